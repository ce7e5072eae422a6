# Shared inline helpers for the kernels (cimport only; no module of its own).
#
# Argument checks use the NumPy C API directly: a Python-level check of
# dtype/flags/shape costs more than a whole batch-1 kernel. Every module
# that cimports this must call ``cnp.import_array()``.
cimport numpy as cnp
from cython cimport floating
from libc.math cimport erf, erff, exp, expf, expm1, expm1f, log, log1p, log1pf, logf
from libc.math cimport sqrt, sqrtf, tanh, tanhf

ctypedef void* ptr

cdef enum:
    F32 = 0
    F64 = 1


cdef inline int kind(object a) noexcept:
    """F32 or F64 for a C-contiguous float32/float64 ndarray, else -1 (the caller falls back)."""
    if not isinstance(a, cnp.ndarray) or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a):
        return -1
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if t == cnp.NPY_FLOAT32:
        return F32
    if t == cnp.NPY_FLOAT64:
        return F64
    return -1


cdef inline bint same(object a, int k, object ref) noexcept:
    """``a`` is a C-contiguous array of kind ``k`` with exactly the shape of ndarray ``ref``."""
    return kind(a) == k and cnp.PyArray_SAMESHAPE(<cnp.ndarray>a, <cnp.ndarray>ref)


cdef inline bint vector(object a, int k, Py_ssize_t n) noexcept:
    """``a`` is a C-contiguous 1-D array of kind ``k`` and length ``n``."""
    return (kind(a) == k and cnp.PyArray_NDIM(<cnp.ndarray>a) == 1
            and cnp.PyArray_DIM(<cnp.ndarray>a, 0) == n)


cdef inline bint optional(object a, int k, object ref) noexcept:
    """None, or an array ``same`` as ``ref``."""
    return a is None or same(a, k, ref)


cdef inline cnp.ndarray empty_like(object ref):
    """A new C-contiguous array with the shape and dtype of ndarray ``ref``."""
    cdef cnp.ndarray r = <cnp.ndarray>ref
    return cnp.PyArray_EMPTY(cnp.PyArray_NDIM(r), cnp.PyArray_DIMS(r), cnp.PyArray_TYPE(r), 0)


cdef inline cnp.ndarray empty_1d(Py_ssize_t n, int k):
    """A new 1-D float32/float64 array of length ``n``."""
    cdef cnp.npy_intp dim = n
    return cnp.PyArray_EMPTY(1, &dim, cnp.NPY_FLOAT32 if k == F32 else cnp.NPY_FLOAT64, 0)


cdef inline void* data(object a) noexcept:
    """The data pointer of an ndarray, NULL for None."""
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline Py_ssize_t size(object a) noexcept:
    return cnp.PyArray_SIZE(<cnp.ndarray>a)


cdef inline Py_ssize_t cut(Py_ssize_t n, Py_ssize_t c, Py_ssize_t nt) noexcept nogil:
    """Start of chunk ``c`` of ``nt`` equal static chunks of ``range(n)``."""
    return n * c // nt


# libm in the precision of the data: float kernels call the f-suffixed functions.
cdef inline floating fexp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating fexpm1(floating x) noexcept nogil:
    if floating is float:
        return expm1f(x)
    else:
        return expm1(x)


cdef inline floating flog(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


cdef inline floating flog1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef inline floating ftanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef inline floating ferf(floating x) noexcept nogil:
    if floating is float:
        return erff(x)
    else:
        return erf(x)


cdef inline floating fsqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating fsigmoid(floating x) noexcept nogil:
    """Logistic sigmoid split by sign so exp never overflows (as Ops.sigmoid)."""
    cdef floating e = fexp(-x if x >= 0 else x)
    return 1 / (1 + e) if x >= 0 else e / (1 + e)
