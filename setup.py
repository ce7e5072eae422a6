"""Build the Cython kernels in fastnn/_kernels with -O3 and, where the compiler has it, OpenMP.

Building from source needs a C compiler; without one the build stops at once
and says so. Where the compiler cannot build an OpenMP program the kernels
are compiled single-threaded (``FASTNN_NO_OPENMP=1`` asks for that on
purpose); the build prints which of the two it was, the kernels remember it
(``fastnn.backend.openmp_enabled()``, ``fastnn._kernels.openmp_build_note()``),
and ``import fastnn`` warns when OpenMP was lost to the compiler rather than
opted out of, since pip hides build output.

A rebuild with other flags (OpenMP on/off, another compiler, another NumPy or
Cython) rebuilds every extension: a stamp under build/ records the last build's.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import Cython
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = ["_blas", "_elementwise", "_losses", "_optim", "_norm", "_openmp", "_quant",
           "_executor"]
FLAGS_STAMP = os.path.join(HERE, "build", "fastnn-build-flags.json")
BUILD_COMMANDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}


# Making an sdist or reading metadata compiles nothing: no compiler or OpenMP probe then.
BUILDING = bool(BUILD_COMMANDS.intersection(sys.argv[1:]))
# The compiler command setuptools will use ($CC or Python's), and its path or None.
CC_ARGV = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
CC_PATH = shutil.which(CC_ARGV[0])


def require_c_compiler():
    """Stop a source build early, with the reason, when there is no C compiler."""
    if BUILDING and CC_PATH is None:
        sys.exit(
            f"fastnn-toolkit: building from source needs a C compiler, and '{CC_ARGV[0]}' was not "
            "found on PATH. Install one (Debian/Ubuntu: apt-get install gcc; set CC to use "
            "another), or install the prebuilt wheel: pip install --only-binary=:all: fastnn-toolkit")


def openmp_choice():
    """(use_openmp, note): note is "" when on, "opt-out" or "compiler" when off."""
    if os.environ.get("FASTNN_NO_OPENMP"):
        return False, "opt-out"
    if CC_PATH is None:
        return False, "compiler"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "t.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n")
        proc = subprocess.run(CC_ARGV + ["-fopenmp", src, "-o", os.path.join(tmp, "t")],
                              capture_output=True)
    return (True, "") if proc.returncode == 0 else (False, "compiler")


def read_stamp():
    try:
        with open(FLAGS_STAMP) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class BuildExt(build_ext):
    """build_ext that rebuilds everything when the flags differ from the last build's."""

    def run(self):
        if read_stamp() != FLAGS:
            self.force = True
        super().run()
        os.makedirs(os.path.dirname(FLAGS_STAMP), exist_ok=True)
        with open(FLAGS_STAMP, "w") as f:
            json.dump(FLAGS, f)


require_c_compiler()
OPENMP, OPENMP_NOTE = openmp_choice() if BUILDING else (False, "")
if BUILDING:
    if OPENMP_NOTE == "opt-out":
        print("fastnn: FASTNN_NO_OPENMP is set: building single-threaded kernels", file=sys.stderr)
    elif OPENMP_NOTE == "compiler":
        print(f"fastnn: WARNING: the C compiler ({CC_ARGV[0]}) cannot build an OpenMP "
              "program; building single-threaded kernels (with clang, install libomp)",
              file=sys.stderr)

# -fno-math-errno lets sqrt/exp loops vectorize (we never read errno). -g0 and a stripped
# link keep debug info out of the wheel (the kernels are ~5x smaller without it).
compile_args = ["-O3", "-ffp-contract=fast", "-fno-math-errno", "-g0"]
link_args = ["-s"] if sys.platform.startswith("linux") else []
if OPENMP:
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")

# The generated C depends on the Cython and NumPy it was made with (an isolated build
# env may have had others than the next in-place build): a change rebuilds too.
FLAGS = {"compiler": CC_ARGV, "compile": compile_args, "link": link_args,
         "openmp_note": OPENMP_NOTE, "numpy": numpy.__version__, "cython": Cython.__version__}

# Every module is rebuilt when any header changes: simpler than tracking who includes what.
KERNEL_HEADERS = sorted(os.path.relpath(os.path.join(root, name), HERE)
                        for root, _, names in os.walk(os.path.join(HERE, "fastnn", "_kernels"))
                        for name in names if name.endswith(".h"))

extensions = [
    Extension(
        f"fastnn._kernels.{name}",
        [f"fastnn/_kernels/{name}.pyx"],
        include_dirs=[numpy.get_include()],
        depends=KERNEL_HEADERS,  # an edited header rebuilds the modules that include it
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                       ("FASTNN_OPENMP_NOTE", f'"{OPENMP_NOTE}"')],
    )
    for name in KERNELS
]

setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=cythonize(
        extensions,
        force=BUILDING and read_stamp() != FLAGS,
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
