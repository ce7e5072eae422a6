"""Row-major sgemm/dgemm through scipy.linalg.cython_blas.

BLAS is column-major; a row-major ``C = op(A) @ op(B)`` is the column-major
``C^T = op(B)^T @ op(A)^T``, so we call it with the operands swapped.

The kernels never change the BLAS thread count: a caller whose OpenMP threads
each call BLAS holds the pool to one thread around the whole call, through
threadpoolctl (``fastnn.backend.threads.blas_single_thread``).
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

