"""Compiled kernels (Cython/OpenMP + BLAS). Only fastnn.backend imports these.

Importing the package warns once when the kernels lost OpenMP to a compiler
that could not build it (pip hides the build's own message); a build that
opted out with ``FASTNN_NO_OPENMP=1`` stays quiet.
"""
import warnings

from ._openmp import openmp_build_note

if openmp_build_note() == "compiler":
    warnings.warn(
        "fastnn's kernels were built without OpenMP because the C compiler could not build "
        "an OpenMP program; they run on one thread. Rebuild with an OpenMP-capable compiler "
        "(with clang: install libomp), or build with FASTNN_NO_OPENMP=1 to silence this.",
        RuntimeWarning, stacklevel=2)
