"""What a user installs is what the suite tests: the package's modules, its compiled
kernels, one version string and the distribution name."""
import importlib.metadata
import os
import sys
from pathlib import Path

import pytest

import fastnn
from fastnn import backend
from fastnn._kernels import openmp_build_note

DISTRIBUTION = "fastnn-toolkit"
PACKAGE_DIR = Path(fastnn.__file__).resolve().parent


def test_runs_against_the_installed_wheel_when_asked():
    """CI sets FASTNN_TEST_INSTALLED=1 when it runs the suite from outside the clone."""
    if os.environ.get("FASTNN_TEST_INSTALLED") != "1":
        pytest.skip("FASTNN_TEST_INSTALLED=1 is set only for the run against the installed wheel")
    assert "site-packages" in PACKAGE_DIR.parts, f"fastnn was imported from {PACKAGE_DIR}"


def test_every_module_of_the_source_tree_is_installed(repo_root):
    source = repo_root / "fastnn"
    modules = {p.relative_to(source) for p in source.rglob("*.py")}
    installed = {p.relative_to(PACKAGE_DIR) for p in PACKAGE_DIR.rglob("*.py")}
    assert modules, f"no modules under {source}"
    assert modules <= installed, f"missing from {PACKAGE_DIR}: {sorted(map(str, modules - installed))}"


def test_every_kernel_is_compiled_and_no_c_source_ships(repo_root):
    kernels = {p.stem for p in (repo_root / "fastnn" / "_kernels").glob("*.pyx")}
    assert kernels
    for name in kernels:
        found = list((PACKAGE_DIR / "_kernels").glob(f"{name}.*.so")) + list(
            (PACKAGE_DIR / "_kernels").glob(f"{name}.*.pyd"))
        assert found, f"no compiled extension for {name} in {PACKAGE_DIR / '_kernels'}"
    if PACKAGE_DIR != (repo_root / "fastnn").resolve():  # an installed package, not the checkout
        shipped = [p.name for p in PACKAGE_DIR.rglob("*") if p.suffix in (".c", ".pyx", ".pxd")]
        assert not shipped, f"build sources in the installed package: {shipped}"


def test_one_version_string():
    try:
        installed = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{DISTRIBUTION} is not installed in this environment")
    assert installed == fastnn.__version__


def test_openmp_note_agrees_with_the_build():
    note = openmp_build_note()
    assert note in ("", "opt-out", "compiler")
    assert backend.openmp_enabled() is (note == "")


def test_install_hints_name_our_distribution(repo_root):
    """``pip install "fastnn[...]"`` would install an unrelated project of that name."""
    offenders = []
    for folder in ("fastnn", "docs", "examples", "bench"):
        for path in (repo_root / folder).rglob("*"):
            if path.suffix not in (".py", ".md", ".pyx") or not path.is_file():
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            for bad in ('install "fastnn[', "install 'fastnn[", "install fastnn[", "install fastnn "):
                if bad in text:
                    offenders.append(f"{path.relative_to(repo_root)}: {bad}")
    assert not offenders, offenders


def test_python_version_is_declared():
    try:
        meta = importlib.metadata.metadata(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{DISTRIBUTION} is not installed in this environment")
    from packaging.specifiers import SpecifierSet
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in SpecifierSet(meta["Requires-Python"])
