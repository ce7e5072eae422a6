"""The compiled kernels are built the way the backend reports, and "cpu" is the default."""
import glob
import os
import shutil
import subprocess

import pytest

import fastnn._kernels
from fastnn import backend

KERNEL_DIR = os.path.dirname(fastnn._kernels.__file__)
OPENMP_KERNELS = ["_elementwise", "_losses", "_norm", "_optim", "_openmp"]


OPENMP_RUNTIMES = ("libgomp", "libomp", "libiomp")  # GCC, LLVM/clang, Intel


def _links_openmp(lib):
    out = subprocess.run(["ldd", lib], capture_output=True, text=True).stdout
    return any(name in out for name in OPENMP_RUNTIMES)


def _links_libgomp():
    """True/False from ldd on the built kernels (any OpenMP runtime, bundled ones too);
    None when that cannot be told here."""
    libs = glob.glob(os.path.join(KERNEL_DIR, "_openmp*.so"))
    if not libs or shutil.which("ldd") is None:
        return None
    proc = subprocess.run(["ldd", libs[0]], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return any(name in proc.stdout for name in OPENMP_RUNTIMES)


def test_openmp_enabled_matches_the_build():
    linked = _links_libgomp()
    if linked is None:
        pytest.skip("no ldd or no built _openmp extension to inspect")
    if linked:
        assert backend.openmp_enabled() is True
    else:
        assert backend.openmp_enabled() is False


def test_all_kernels_link_libgomp_when_openmp_is_on():
    if _links_libgomp() is not True:
        pytest.skip("kernels built without OpenMP, or no ldd")
    for name in OPENMP_KERNELS:
        lib = glob.glob(os.path.join(KERNEL_DIR, name + ".*so"))[0]
        assert _links_openmp(lib), f"{os.path.basename(lib)} is not linked against an OpenMP runtime"


def test_cpu_is_the_default_backend():
    assert backend.get_backend() == "cpu"
    assert type(backend.get_ops()).__name__ == "CpuOps"
