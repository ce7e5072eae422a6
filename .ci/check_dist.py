"""Check the built sdist and repaired wheel hold what they should, and nothing else.

Usage: check_dist.py SDIST WHEEL (run from the repository root).
"""
import sys
import tarfile
import zipfile
from pathlib import Path

REPO = Path.cwd()


def fail(message):
    sys.exit(f"check_dist: {message}")


def main(sdist_path, wheel_path):
    modules = {str(p.relative_to(REPO)) for p in (REPO / "fastnn").rglob("*.py")}
    kernels = {p.stem for p in (REPO / "fastnn" / "_kernels").glob("*.pyx")}

    with tarfile.open(sdist_path) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for need in ["LICENSE", "README.md", "setup.py", "pyproject.toml", "MANIFEST.in",
                 "tests/conftest.py", "examples/digits.py", "bench/compare.py", "docs/index.md"]:
        if need not in names:
            fail(f"{sdist_path} lacks {need}")
    missing = sorted(m for m in modules if m not in names)
    missing += sorted(f"fastnn/_kernels/{k}.pyx" for k in kernels
                      if f"fastnn/_kernels/{k}.pyx" not in names)
    if missing:
        fail(f"{sdist_path} lacks {missing}")
    debris = sorted(n for n in names if n.endswith((".c", ".so", ".pyc")) or "/build/" in f"/{n}")
    if debris:
        fail(f"{sdist_path} carries build output: {debris[:10]}")

    wheel = Path(wheel_path)
    if "manylinux" not in wheel.name:
        fail(f"{wheel.name} is not a manylinux wheel")
    with zipfile.ZipFile(wheel) as whl:
        infos = whl.infolist()
    names = {i.filename for i in infos}
    missing = sorted(m for m in modules if m not in names)
    missing += sorted(k for k in kernels
                      if not any(n.startswith(f"fastnn/_kernels/{k}.") and n.endswith(".so") for n in names))
    if missing:
        fail(f"{wheel.name} lacks {missing}")
    sources = sorted(n for n in names if n.endswith((".c", ".pyx", ".pxd", ".h")))
    if sources:
        fail(f"{wheel.name} carries build sources: {sources}")
    if not any(n.endswith("licenses/LICENSE") for n in names):
        fail(f"{wheel.name} has no LICENSE")
    bundled = sorted(n for n in names if ".libs/" in n and not n.endswith("/"))
    if not any("gomp" in n or "libomp" in n for n in bundled):
        fail(f"{wheel.name} does not bundle the OpenMP runtime: {bundled}")
    installed = sum(i.file_size for i in infos)
    print(f"check_dist: {wheel.name}: {wheel.stat().st_size / 1e6:.2f} MB, "
          f"{installed / 1e6:.2f} MB installed, bundles {[Path(n).name for n in bundled]}")
    print(f"check_dist: {Path(sdist_path).name}: {len(names)} wheel files checked, sdist complete")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        fail("usage: check_dist.py SDIST WHEEL")
    main(sys.argv[1], sys.argv[2])
