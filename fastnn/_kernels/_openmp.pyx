"""Whether the kernels were built with OpenMP, and how many cores OpenMP sees."""

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int fastnn_openmp_enabled(void) { return 1; }
    static int fastnn_omp_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int fastnn_openmp_enabled(void) { return 0; }
    static int fastnn_omp_max_threads(void) { return 1; }
    #endif
    #ifndef FASTNN_OPENMP_NOTE
    #define FASTNN_OPENMP_NOTE ""
    #endif
    static const char *fastnn_openmp_note(void) { return FASTNN_OPENMP_NOTE; }
    """
    int fastnn_openmp_enabled() nogil
    int fastnn_omp_max_threads() nogil
    const char *fastnn_openmp_note() nogil


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(fastnn_openmp_enabled())


def openmp_build_note():
    """Why the kernels have no OpenMP: "opt-out" (FASTNN_NO_OPENMP at build time),
    "compiler" (the C compiler could not build an OpenMP program), or "" (they have it)."""
    return fastnn_openmp_note().decode("ascii")


def omp_max_threads():
    """OpenMP's default team size (honours OMP_NUM_THREADS)."""
    return fastnn_omp_max_threads()
