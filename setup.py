"""Build the Cython kernels in fastnn/_kernels with -O3 and, where the compiler has it, OpenMP.

Where the compiler cannot build an OpenMP program the kernels are compiled
single-threaded; the build says so and ``fastnn.backend.openmp_enabled()``
reports it at runtime.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

KERNELS = ["_blas", "_elementwise", "_losses", "_optim", "_norm", "_openmp", "_mlp"]


def compiler_has_openmp():
    """Try to compile and link a tiny OpenMP program with the default C compiler."""
    if os.environ.get("FASTNN_NO_OPENMP"):
        return False
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "t.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n")
        proc = subprocess.run([cc, "-fopenmp", src, "-o", os.path.join(tmp, "t")],
                              capture_output=True)
        return proc.returncode == 0


OPENMP = compiler_has_openmp()
if not OPENMP:
    print("fastnn: the C compiler has no OpenMP; building single-threaded kernels", file=sys.stderr)

# -fno-math-errno lets sqrt/exp loops vectorize (we never read errno).
compile_args = ["-O3", "-ffp-contract=fast", "-fno-math-errno"]
link_args = []
if OPENMP:
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")

extensions = [
    Extension(
        f"fastnn._kernels.{name}",
        [f"fastnn/_kernels/{name}.pyx"],
        include_dirs=[numpy.get_include()],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for name in KERNELS
]

setup(
    ext_modules=cythonize(
        extensions,
        compile_time_env={"FASTNN_OPENMP": OPENMP},
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "initializedcheck": False,
            "cdivision": True,
            "nonecheck": False,
        },
    ),
)
