"""Row-major sgemm/dgemm through scipy.linalg.cython_blas.

BLAS is column-major; a row-major ``C = op(A) @ op(B)`` is the column-major
``C^T = op(B)^T @ op(A)^T``, so we call it with the operands swapped.

Kernels that split GEMMs between their own OpenMP threads need the BLAS to run
each call on the calling thread: ``blas_threads_swap`` sets the thread count of
the OpenBLAS behind cython_blas (found at import; absent for other BLAS builds).
"""
from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef void gemm_rm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                  const floating* a, int lda, const floating* b, int ldb, floating beta,
                  floating* c, int ldc) noexcept nogil:
    """C (m x n, row-major, leading dim ldc) = alpha * op(A) @ op(B) + beta * C."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda, &beta, c, &ldc)


def gemm(const floating[:, ::1] a, const floating[:, ::1] b, floating[:, ::1] out,
         bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0):
    """``out = alpha * op(a) @ op(b) + beta * out`` for C-contiguous 2-D arrays; releases the GIL."""
    cdef int m = a.shape[1] if trans_a else a.shape[0]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    cdef int kb = b.shape[1] if trans_b else b.shape[0]
    cdef int n = b.shape[0] if trans_b else b.shape[1]
    if k != kb or out.shape[0] != m or out.shape[1] != n:
        raise ValueError(f"gemm shapes do not agree: op(a) is ({m}, {k}), op(b) is ({kb}, {n}), "
                         f"out is ({out.shape[0]}, {out.shape[1]})")
    if m == 0 or n == 0 or k == 0:
        raise ValueError("gemm kernel needs non-empty operands; Ops.gemm handles empty ones")
    cdef int lda = a.shape[1]
    cdef int ldb = b.shape[1]
    cdef int ldc = out.shape[1]
    with nogil:
        gemm_rm(trans_a, trans_b, m, n, k, <floating>alpha, &a[0, 0], lda, &b[0, 0], ldb,
                <floating>beta, &out[0, 0], ldc)


ctypedef void (*set_threads_fn)(int) noexcept nogil
ctypedef int (*get_threads_fn)() noexcept nogil

cdef set_threads_fn _set_threads = NULL
cdef get_threads_fn _get_threads = NULL


def _bind_thread_control():
    """Find ``openblas_set/get_num_threads`` in the library cython_blas links to."""
    global _set_threads, _get_threads
    import ctypes
    from scipy.linalg import cython_blas
    try:
        lib = ctypes.CDLL(cython_blas.__file__)
    except OSError:
        return
    for prefix in ("scipy_", ""):
        try:
            set_fn = getattr(lib, prefix + "openblas_set_num_threads")
            get_fn = getattr(lib, prefix + "openblas_get_num_threads")
        except AttributeError:
            continue
        _set_threads = <set_threads_fn><size_t>ctypes.cast(set_fn, ctypes.c_void_p).value
        _get_threads = <get_threads_fn><size_t>ctypes.cast(get_fn, ctypes.c_void_p).value
        return


_bind_thread_control()


def has_thread_control():
    """True when kernels can make the BLAS run single-threaded around their own regions."""
    return _set_threads != NULL


cdef int blas_threads_swap(int n) noexcept nogil:
    """Set the BLAS thread count to ``n``; returns the previous count (0: no control)."""
    cdef int previous
    if _set_threads == NULL:
        return 0
    previous = _get_threads()
    if previous != n:
        _set_threads(n)
    return previous
