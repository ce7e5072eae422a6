"""A whole training step of a stack of affine + activation stages in one call.

``DenseStack`` holds pointers to the stages' weights and gradients (views into
a model's flat buffers, kept alive by references) and float32 workspaces for
one batch size. ``train_step`` runs forward, the loss and its gradient, and
backward without returning to Python between stages; ``predict`` runs the
forward pass into caller-owned scratch, so it may run in many threads at once.
``forward_train`` and ``backward_from`` split a step around a loss computed
outside (a user's loss): forward keeping the activations, then backward from a
given gradient of the head output, through the same backward code.
Large steps can run on one OpenMP team that splits every GEMM between its
threads (``team_size``); smaller ones leave the threading of each GEMM to BLAS.

The kernels know nothing of layers: a stage is ``y = act(x @ W + b)``.
Activation codes: 0 linear, 1 relu, 2 sigmoid, 3 tanh, 4 softmax (head only).
Loss codes: 0 softmax cross-entropy with int64 class ids, 1 softmax
cross-entropy with dense targets, 2 sigmoid binary cross-entropy (mean over
columns), 3 mean squared error (mean over columns) after the head activation.
"""
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cython.parallel cimport parallel
from libc.string cimport memcpy
from libc.math cimport expf, fabsf, isfinite, log, log1pf, tanhf

cimport numpy as cnp

from ._blas cimport gemm_rm
from ._common cimport fsigmoid

cnp.import_array()

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static void fastnn_barrier(void) {
        #pragma omp barrier
    }
    static int fastnn_thread_num(void) { return omp_get_thread_num(); }
    static int fastnn_team_size(void) { return omp_get_num_threads(); }
    static const int fastnn_has_openmp = 1;
    #else
    static void fastnn_barrier(void) {}
    static int fastnn_thread_num(void) { return 0; }
    static int fastnn_team_size(void) { return 1; }
    static const int fastnn_has_openmp = 0;
    #endif
    """
    void fastnn_barrier() noexcept nogil
    int fastnn_thread_num() noexcept nogil
    int fastnn_team_size() noexcept nogil
    const int fastnn_has_openmp

# Batches up to this size take the GEMV path in predict (weights streamed once per
# four rows, output columns split between threads). Measured on the 2-core VM for
# the 784-512-512-10 model, against scipy's OpenBLAS sgemm (slow at few rows:
# ~500 us for 1 to 8 rows): 1 thread, 8 rows 194 vs 543 us, 32 rows 737 vs 852,
# 64 rows 1324 vs 1324; 2 threads, 32 rows 470 vs 475, 48 rows 865 vs 573.
cdef int GEMV_MAX_ROWS = 32

# The GEMV path splits each layer's columns between OpenMP threads only when the
# model has at least this many weights (and the caller found free cores: see
# ``predict_can_thread``): the weights' stream from memory is what two cores share.
# Measured on the 2-core VM, one call, 1 vs 2 threads: with idle cores, 784-512-512-10
# (6.7e5 weights) 54.6 vs 45.8 us and 58.1 vs 45.4 us (bench/RESULTS.md runs 5 and 7);
# under the load of other processes (load average ~4.5, best of 11) 784-2048-2048-10
# (5.8e6) 498 vs 272 us, 784-512-512-10 38 vs 51 us, 256-512-512-10 (4.0e5) 23.5 vs
# 32.2 us, 64-128-128-10 2.1 vs 7.8 us (the barrier costs more than the product).
cdef double GEMV_THREAD_MIN_WEIGHTS = 1 << 19

# A training step is split between threads by us (one OpenMP team, a
# single-threaded BLAS call per thread's block of each GEMM) only above this many
# multiply-adds; below, BLAS threads each GEMM itself. Measured on the 2-core
# development VM, epochs at 2 threads, interleaved: train_large (8.9e9 MACs a
# step) 3.7 s with the team against 4.1 s with BLAS threading; train_medium
# (2.6e8) 595 against 520 ms: each thread packs the shared operand of every GEMM
# again, which small GEMMs do not repay, and the barriers wait on the slower core.
cdef double TEAM_MIN_MACS = 1 << 30
# The team's per-thread loss sums live on the stack.
cdef int MAX_TEAM = 64

cdef enum:
    LINEAR = 0
    RELU = 1
    SIGMOID = 2
    TANH = 3
    SOFTMAX = 4

cdef enum:
    SOFTMAX_CE_SPARSE = 0
    SOFTMAX_CE_DENSE = 1
    SIGMOID_BCE = 2
    MSE = 3

cdef inline float row_max(const float* row, Py_ssize_t d) noexcept nogil:
    cdef Py_ssize_t j
    cdef float m = row[0]
    for j in range(1, d):
        if row[j] > m:
            m = row[j]
    return m


cdef void bias_act(float* z, const float* b, Py_ssize_t n, Py_ssize_t d,
                   int act) noexcept nogil:
    """z = act(z + b) row by row (softmax: over each row)."""
    cdef Py_ssize_t i, j
    cdef float* row
    cdef float m, s
    if act != SOFTMAX:
        bias_act_cols(z, b, n, d, 0, d, act)
        return
    for i in range(n):
        row = z + i * d
        if b != NULL:
            for j in range(d):
                row[j] = row[j] + b[j]
        m = row_max(row, d)
        s = 0
        for j in range(d):
            row[j] = expf(row[j] - m)
            s = s + row[j]
        for j in range(d):
            row[j] = row[j] / s


cdef void bias_act_cols(float* z, const float* b, Py_ssize_t n, Py_ssize_t d,
                        Py_ssize_t lo, Py_ssize_t hi, int act) noexcept nogil:
    """z[:, lo:hi] = act(z[:, lo:hi] + b[lo:hi]) for an elementwise activation (one
    thread's column block of a layer output)."""
    cdef Py_ssize_t i, j
    cdef float* row
    for i in range(n):
        row = z + i * d
        if b != NULL:
            for j in range(lo, hi):
                row[j] = row[j] + b[j]
        if act == RELU:
            for j in range(lo, hi):
                row[j] = row[j] if row[j] > 0 else 0
        elif act == SIGMOID:
            for j in range(lo, hi):
                row[j] = fsigmoid(row[j])
        elif act == TANH:
            for j in range(lo, hi):
                row[j] = tanhf(row[j])


cdef void act_backward(float* delta, const float* y, Py_ssize_t size, int act) noexcept nogil:
    """delta *= act'(.) written through the activation's output y (in place); one loop
    per activation so each vectorizes."""
    cdef Py_ssize_t i
    if act == RELU:
        for i in range(size):
            delta[i] = delta[i] if y[i] > 0 else 0
    elif act == SIGMOID:
        for i in range(size):
            delta[i] = delta[i] * y[i] * (1 - y[i])
    elif act == TANH:
        for i in range(size):
            delta[i] = delta[i] * (1 - y[i] * y[i])


cdef void softmax_backward(float* delta, const float* y, Py_ssize_t n,
                           Py_ssize_t d) noexcept nogil:
    """delta = y * (delta - sum(delta * y)) row by row: the vector-Jacobian product of
    a softmax through its output y (in place)."""
    cdef Py_ssize_t i, j
    cdef float dot
    cdef float* drow
    cdef const float* yrow
    for i in range(n):
        drow = delta + i * d
        yrow = y + i * d
        dot = 0
        for j in range(d):
            dot = dot + drow[j] * yrow[j]
        for j in range(d):
            drow[j] = yrow[j] * (drow[j] - dot)


cdef void act_backward_cols(float* delta, const float* y, Py_ssize_t n, Py_ssize_t d,
                            Py_ssize_t lo, Py_ssize_t hi, int act) noexcept nogil:
    """act_backward on the column block [lo, hi) of (n, d) arrays."""
    cdef Py_ssize_t i
    for i in range(n):
        act_backward(delta + i * d + lo, y + i * d + lo, hi - lo, act)


cdef void column_sums(const float* a, float* out, Py_ssize_t n, Py_ssize_t d,
                      Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """out[lo:hi] = a[:, lo:hi].sum(axis=0)."""
    cdef Py_ssize_t i, j
    for j in range(lo, hi):
        out[j] = 0
    for i in range(n):
        for j in range(lo, hi):
            out[j] += a[i * d + j]


cdef void block_range(Py_ssize_t size, int t, int team, Py_ssize_t* lo,
                      Py_ssize_t* hi) noexcept nogil:
    """Thread t's share [lo, hi) of ``size`` items, in 16-item (64-byte) blocks so
    threads writing neighbouring columns share no cache line."""
    cdef Py_ssize_t block = ((size + team - 1) // team + 15) // 16 * 16
    lo[0] = t * block
    if lo[0] > size:
        lo[0] = size
    hi[0] = lo[0] + block
    if hi[0] > size:
        hi[0] = size


cdef bint split_columns(Py_ssize_t m, Py_ssize_t n, int team) noexcept nogil:
    """Whether a team splits an (m, n) GEMM output by columns (else by rows)."""
    return n >= m or n >= 32 * team


cdef void gemm_share(int t, int team, bint trans_a, bint trans_b, int m, int n, int k,
                     const float* a, int lda, const float* b, int ldb,
                     float* c, int ldc) noexcept nogil:
    """Thread t's block of C = op(A) @ op(B): its columns, or its rows when C is narrow.
    Each block is one single-threaded BLAS call."""
    cdef Py_ssize_t lo, hi
    if split_columns(m, n, team):
        block_range(n, t, team, &lo, &hi)
        if lo < hi:
            gemm_rm(trans_a, trans_b, m, <int>(hi - lo), k, <float>1.0, a, lda,
                    b + (lo * ldb if trans_b else lo), ldb, <float>0.0, c + lo, ldc)
    else:
        block_range(m, t, team, &lo, &hi)
        if lo < hi:
            gemm_rm(trans_a, trans_b, <int>(hi - lo), n, k, <float>1.0,
                    a + (lo if trans_a else lo * lda), lda, b, ldb, <float>0.0,
                    c + lo * ldc, ldc)


cdef double head_loss(float* z, float* delta, const void* targets, const float* w,
                      Py_ssize_t n, Py_ssize_t d, int loss, float scale,
                      bint write_probs) noexcept nogil:
    """Loss sum over the batch; delta becomes the gradient of ``scale * sum`` w.r.t. z
    (the logits, or the outputs for MSE). With ``write_probs`` the probabilities
    replace the logits in z (a fused softmax/sigmoid head: z is the model output)."""
    cdef Py_ssize_t i, j
    cdef double total = 0, row_loss, tsum
    cdef float m, s, p, t, wi, x
    cdef float* row
    cdef float* drow
    cdef const long long* ids = <const long long*>targets
    cdef const float* dense = <const float*>targets
    for i in range(n):
        row = z + i * d
        drow = delta + i * d
        wi = 1.0 if w == NULL else w[i]
        row_loss = 0
        if loss == SOFTMAX_CE_SPARSE or loss == SOFTMAX_CE_DENSE:
            m = row_max(row, d)
            s = 0
            for j in range(d):
                s = s + expf(row[j] - m)
            tsum = 0
            for j in range(d):
                x = row[j] - m
                p = expf(x) / s
                t = (1.0 if j == ids[i] else 0.0) if loss == SOFTMAX_CE_SPARSE else dense[i * d + j]
                if t != 0:
                    row_loss -= t * (x - log(s))
                tsum += t
                drow[j] = p
            for j in range(d):
                t = (1.0 if j == ids[i] else 0.0) if loss == SOFTMAX_CE_SPARSE else dense[i * d + j]
                if write_probs:
                    row[j] = drow[j]
                drow[j] = scale * wi * (drow[j] * <float>tsum - t)
        elif loss == SIGMOID_BCE:
            for j in range(d):
                x = row[j]
                t = dense[i * d + j]
                row_loss += (x if x > 0 else 0) - x * t + log1pf(expf(-fabsf(x)))
                p = fsigmoid(x)
                if write_probs:
                    row[j] = p
                drow[j] = scale * wi * (p - t) / d
            row_loss /= d
        else:  # MSE on outputs
            for j in range(d):
                x = row[j] - dense[i * d + j]
                row_loss += x * x
                drow[j] = scale * wi * 2 * x / d
            row_loss /= d
        total += wi * row_loss
    return total


cdef extern from "gemv.h":
    void fastnn_gemv_rows(const float* x, const float* W, const float* b, float* y,
                          Py_ssize_t n, Py_ssize_t din, Py_ssize_t dout, Py_ssize_t lo,
                          Py_ssize_t hi) noexcept nogil


cdef void gemv_block(const float* x, const float* W, const float* b, float* y,
                     Py_ssize_t n, Py_ssize_t din, Py_ssize_t dout, Py_ssize_t lo,
                     Py_ssize_t hi, int act) noexcept nogil:
    """y[:, lo:hi] = act(x @ W[:, lo:hi] + b[lo:hi]) for a few rows (softmax excluded)."""
    fastnn_gemv_rows(x, W, b, y, n, din, dout, lo, hi)
    if act != LINEAR:
        bias_act_cols(y, NULL, n, dout, lo, hi, act)


cdef class DenseStack:
    """Training step and inference for stages ``y = act(x @ W + b)`` (float32)."""

    cdef int n_stages
    cdef readonly int max_batch
    cdef int* dims        # dims[0] input width, dims[i + 1] output width of stage i
    cdef int* acts
    cdef float** W
    cdef float** b
    cdef float** dW
    cdef float** db
    cdef float** outs     # per stage (max_batch, dims[i+1])
    cdef float** deltas   # per stage (max_batch, dims[i+1])
    cdef list _keep
    cdef object _train_x  # the batch of the last forward_train (None: none pending)

    def __cinit__(self):
        self.n_stages = 0

    def __init__(self, list kernels, list biases, list kernel_grads, list bias_grads,
                 list activations, int max_batch):
        import numpy
        cdef int L = len(kernels), i
        cdef float[:, ::1] mat
        cdef float[::1] vec
        if L == 0 or not (len(biases) == len(kernel_grads) == len(bias_grads)
                          == len(activations) == L):
            raise ValueError("DenseStack needs one kernel, bias, gradient and activation per stage")
        self._keep = [kernels, biases, kernel_grads, bias_grads]
        self.max_batch = max_batch
        self.dims = <int*>PyMem_Malloc((L + 1) * sizeof(int))
        self.acts = <int*>PyMem_Malloc(L * sizeof(int))
        self.W = <float**>PyMem_Malloc(L * sizeof(float*))
        self.b = <float**>PyMem_Malloc(L * sizeof(float*))
        self.dW = <float**>PyMem_Malloc(L * sizeof(float*))
        self.db = <float**>PyMem_Malloc(L * sizeof(float*))
        self.outs = <float**>PyMem_Malloc(L * sizeof(float*))
        self.deltas = <float**>PyMem_Malloc(L * sizeof(float*))
        self.n_stages = L
        workspaces = []
        for i in range(L):
            mat = kernels[i]
            if i == 0:
                self.dims[0] = mat.shape[0]
            elif mat.shape[0] != self.dims[i]:
                raise ValueError(f"stage {i} takes {mat.shape[0]} inputs, previous gives "
                                 f"{self.dims[i]}")
            self.dims[i + 1] = mat.shape[1]
            self.W[i] = &mat[0, 0]
            mat = kernel_grads[i]
            self.dW[i] = &mat[0, 0]
            self.b[i] = self.db[i] = NULL
            if biases[i] is not None:
                vec = biases[i]
                self.b[i] = &vec[0]
                vec = bias_grads[i]
                self.db[i] = &vec[0]
            self.acts[i] = activations[i]
            out = numpy.empty((max_batch, self.dims[i + 1]), dtype=numpy.float32)
            delta = numpy.empty((max_batch, self.dims[i + 1]), dtype=numpy.float32)
            workspaces += [out, delta]
            mat = out
            self.outs[i] = &mat[0, 0]
            mat = delta
            self.deltas[i] = &mat[0, 0]
        self._keep.append(workspaces)

    def __dealloc__(self):
        PyMem_Free(self.dims)
        PyMem_Free(self.acts)
        PyMem_Free(self.W)
        PyMem_Free(self.b)
        PyMem_Free(self.dW)
        PyMem_Free(self.db)
        PyMem_Free(self.outs)
        PyMem_Free(self.deltas)

    def output(self, Py_ssize_t n):
        """The model output of the last ``train_step`` (see ``write_probs``)."""
        return self._keep[4][2 * (self.n_stages - 1)][:n]

    def predict_can_thread(self, Py_ssize_t n):
        """Whether ``predict`` on ``n`` rows would use more than one thread if given
        them: the GEMV path of a model with ``GEMV_THREAD_MIN_WEIGHTS`` weights or more
        (the caller then asks how many cores are free), or the BLAS path."""
        return n > GEMV_MAX_ROWS or self._weights() >= GEMV_THREAD_MIN_WEIGHTS

    cdef double _weights(self) noexcept nogil:
        cdef double weights = 0
        cdef int i
        for i in range(self.n_stages):
            weights += <double>self.dims[i] * self.dims[i + 1]
        return weights

    def predict_uses_blas(self, Py_ssize_t n):
        """Whether ``predict`` on ``n`` rows calls BLAS (more rows than the GEMV path
        takes), so that the caller knows when a BLAS thread scope matters."""
        return n > GEMV_MAX_ROWS

    def team_size(self, Py_ssize_t n, int nthreads):
        """Threads ``train_step`` should get for a batch of ``n``: 1 when the step is
        too small to split or when the kernels were built without OpenMP."""
        cdef double macs = 0
        cdef int i
        if nthreads <= 1 or not fastnn_has_openmp:
            return 1
        for i in range(self.n_stages):
            macs += 3.0 * n * self.dims[i] * self.dims[i + 1]
        if macs < TEAM_MIN_MACS:
            return 1
        return min(nthreads, MAX_TEAM)

    def train_step(self, const float[:, ::1] x, targets, sample_weight, int loss,
                   int first_trainable=0, bint write_probs=True, int nthreads=1):
        """Forward, loss, backward; fills the weight gradients. Returns the mean loss.

        ``targets``: int64 (n,) for loss 0, float32 (n, d_out) otherwise.
        Stages before ``first_trainable`` get no gradients (frozen). ``write_probs``:
        the head is a softmax/sigmoid fused into the loss, so ``output`` gives the
        probabilities; else (``from_logits``) it gives the logits. With ``nthreads``
        > 1 (see ``team_size``) one OpenMP team runs the whole step, each thread
        computing its block of every GEMM with one BLAS call: the caller holds the
        BLAS pool to one thread meanwhile (threadpoolctl, once per fit), else the
        team's BLAS calls would each start BLAS threads of their own.
        """
        cdef Py_ssize_t n = x.shape[0]
        cdef int L = self.n_stages, i
        cdef const long long[::1] ids
        cdef const float[:, ::1] dense
        cdef const float[::1] w
        cdef const void* tptr
        cdef const float* wptr = NULL
        cdef double total = 0
        cdef double partial[64]
        if n < 1 or n > self.max_batch or x.shape[1] != self.dims[0]:
            raise ValueError(f"DenseStack.train_step: batch of shape ({n}, {x.shape[1]}) does "
                             f"not fit ({self.max_batch}, {self.dims[0]})")
        self._train_x = None  # the workspaces no longer hold forward_train's activations
        if loss == SOFTMAX_CE_SPARSE:
            ids = targets
            if ids.shape[0] != n:
                raise ValueError("targets and x have different lengths")
            tptr = &ids[0]
        else:
            dense = targets
            if dense.shape[0] != n or dense.shape[1] != self.dims[L]:
                raise ValueError("targets do not match the output shape")
            tptr = &dense[0, 0]
        if sample_weight is not None:
            w = sample_weight
            if w.shape[0] != n:
                raise ValueError("sample_weight and x have different lengths")
            wptr = &w[0]
        if nthreads < 1:
            nthreads = 1
        if nthreads > MAX_TEAM:
            nthreads = MAX_TEAM
        if not fastnn_has_openmp:
            nthreads = 1
        with nogil:
            for i in range(nthreads):
                partial[i] = 0
            if nthreads > 1:
                self._step_team(&x[0, 0], n, tptr, wptr, loss, first_trainable, write_probs,
                                partial, nthreads)
            else:  # a team of one: whole GEMMs, BLAS threads them
                self._step_share(&x[0, 0], n, tptr, wptr, loss, first_trainable, write_probs,
                                 partial, 0, 1)
            for i in range(nthreads):
                total += partial[i]
        return total / n

    def forward_train(self, const float[:, ::1] x):
        """The forward pass of a training step with no loss: every stage's activations
        are kept for ``backward_from``, and the head's output (after its activation,
        softmax included) is returned as an (n, d_out) view of a workspace, valid until
        the next call. For a loss computed outside the stack (a user's loss). Runs
        single-threaded (BLAS threads each GEMM); the team split is ``train_step``'s."""
        cdef Py_ssize_t n = x.shape[0]
        if n < 1 or n > self.max_batch or x.shape[1] != self.dims[0]:
            raise ValueError(f"DenseStack.forward_train: batch of shape ({n}, {x.shape[1]}) "
                             f"does not fit ({self.max_batch}, {self.dims[0]})")
        self._train_x = x
        with nogil:
            self._forward_share(&x[0, 0], n, self.outs, False, 0, 1)
        return self.output(n)

    def backward_from(self, const float[:, ::1] dy, int first_trainable=0):
        """The backward pass of the last ``forward_train`` from ``dy``, the gradient of
        the loss with respect to the head's output: through the head's activation, then
        every stage down to ``first_trainable`` (earlier stages are frozen), filling the
        weight gradients as ``train_step`` does."""
        cdef Py_ssize_t n, d = self.dims[self.n_stages]
        cdef int L = self.n_stages
        cdef const float[:, ::1] x
        if self._train_x is None:
            raise RuntimeError("DenseStack.backward_from needs a forward_train first")
        x = self._train_x
        n = x.shape[0]
        if dy.shape[0] != n or dy.shape[1] != d:
            raise ValueError(f"DenseStack.backward_from: dy has shape ({dy.shape[0]}, "
                             f"{dy.shape[1]}), the head output ({n}, {d})")
        if not 0 <= first_trainable < L:
            raise ValueError(f"first_trainable must be in [0, {L}), got {first_trainable}")
        self._train_x = None
        with nogil:
            memcpy(self.deltas[L - 1], &dy[0, 0], n * d * sizeof(float))
            if self.acts[L - 1] == SOFTMAX:
                softmax_backward(self.deltas[L - 1], self.outs[L - 1], n, d)
            self._backward_share(&x[0, 0], n, first_trainable, self.acts[L - 1] != SOFTMAX,
                                 0, 1)

    cdef void _step_team(self, const float* x, Py_ssize_t n, const void* targets,
                         const float* w, int loss, int first, bint write_probs,
                         double* partial, int nthreads) noexcept nogil:
        """The whole step in one parallel region, each thread running ``_step_share``."""
        cdef int t, team
        with parallel(num_threads=nthreads):
            t = fastnn_thread_num()
            team = fastnn_team_size()
            self._step_share(x, n, targets, w, loss, first, write_probs, partial, t, team)

    cdef void _step_share(self, const float* x, Py_ssize_t n, const void* targets,
                          const float* w, int loss, int first, bint write_probs,
                          double* partial, int t, int team) noexcept nogil:
        """Thread t's part of a step. It owns a block of every GEMM output
        (``gemm_share``) and applies the bias/activation (forward) or activation
        derivative and bias gradient (backward) to the same block while it is in its
        cache; barriers separate the stages. With a team of one (t=0, team=1) this is
        the single-threaded step: whole GEMMs, and the barriers do nothing."""
        cdef int L = self.n_stages
        cdef Py_ssize_t d, lo = 0, hi = 0
        cdef const void* tblock
        cdef const float* wblock
        self._forward_share(x, n, self.outs, loss != MSE, t, team)
        d = self.dims[L]
        block_range(n, t, team, &lo, &hi)
        if lo < hi:
            if loss == SOFTMAX_CE_SPARSE:
                tblock = <const long long*>targets + lo
            else:
                tblock = <const float*>targets + lo * d
            wblock = NULL
            if w != NULL:
                wblock = w + lo
            partial[t] = head_loss(self.outs[L - 1] + lo * d, self.deltas[L - 1] + lo * d,
                                   tblock, wblock, hi - lo, d, loss, <float>(1.0 / n),
                                   write_probs)
        fastnn_barrier()
        self._backward_share(x, n, first, loss == MSE, t, team)

    cdef void _backward_share(self, const float* x, Py_ssize_t n, int first, bint head_act,
                              int t, int team) noexcept nogil:
        """Thread t's part of the backward pass from the head's delta (``deltas[L - 1]``,
        d loss / d head output, or d loss / d logits when not ``head_act``): the
        activation derivative (the head's only with ``head_act``), then each stage's
        weight gradients and the delta of the stage before, down to stage ``first``."""
        cdef int i
        cdef int L = self.n_stages
        cdef Py_ssize_t d, lo = 0, hi = 0
        cdef const float* inp
        for i in range(L - 1, first - 1, -1):
            d = self.dims[i + 1]
            block_range(d, t, team, &lo, &hi)
            if lo < hi:
                if i < L - 1 or head_act:
                    act_backward_cols(self.deltas[i], self.outs[i], n, d, lo, hi,
                                      self.acts[i])
                if self.db[i] != NULL:
                    column_sums(self.deltas[i], self.db[i], n, d, lo, hi)
            fastnn_barrier()
            inp = x if i == 0 else self.outs[i - 1]
            gemm_share(t, team, True, False, self.dims[i], <int>d, <int>n, inp,
                       self.dims[i], self.deltas[i], <int>d, self.dW[i], <int>d)
            if i > first:
                gemm_share(t, team, False, True, <int>n, self.dims[i], <int>d,
                           self.deltas[i], <int>d, self.W[i], <int>d, self.deltas[i - 1],
                           self.dims[i])
            fastnn_barrier()

    cdef void _forward_share(self, const float* x, Py_ssize_t n, float** outs,
                             bint logits_head, int t, int team) noexcept nogil:
        """Thread t's part of a team's forward pass (inside a parallel region, or with
        t=0, team=1 alone): its block of each layer's GEMM, then the bias and
        activation on that block."""
        cdef int i, act
        cdef Py_ssize_t d, lo = 0, hi = 0
        cdef const float* inp = x
        for i in range(self.n_stages):
            d = self.dims[i + 1]
            act = LINEAR if (logits_head and i == self.n_stages - 1) else self.acts[i]
            gemm_share(t, team, False, False, <int>n, <int>d, self.dims[i], inp,
                       self.dims[i], self.W[i], <int>d, outs[i], <int>d)
            if act != SOFTMAX and split_columns(n, d, team):
                block_range(d, t, team, &lo, &hi)
                bias_act_cols(outs[i], self.b[i], n, d, lo, hi, act)
            else:  # softmax needs whole rows: wait for every column block
                if act == SOFTMAX:
                    fastnn_barrier()
                block_range(n, t, team, &lo, &hi)
                if lo < hi:
                    bias_act(outs[i] + lo * d, self.b[i], hi - lo, d, act)
            fastnn_barrier()
            inp = outs[i]

    cdef void _forward_gemv(self, const float* x, Py_ssize_t n, float** outs,
                            int nthreads) noexcept nogil:
        """Forward for a few rows in one parallel region: each thread computes its
        block of every layer's columns, with a barrier between layers."""
        cdef int i, t, team, act
        cdef Py_ssize_t lo, hi, d
        cdef const float* inp
        cdef int L = self.n_stages
        if self._weights() < GEMV_THREAD_MIN_WEIGHTS:
            nthreads = 1
        if nthreads <= 1:
            inp = x
            for i in range(L):
                act = self.acts[i]
                gemv_block(inp, self.W[i], self.b[i], outs[i], n, self.dims[i],
                           self.dims[i + 1], 0, self.dims[i + 1],
                           LINEAR if act == SOFTMAX else act)
                inp = outs[i]
        else:
            with parallel(num_threads=nthreads):
                t = fastnn_thread_num()
                team = fastnn_team_size()
                lo = 0  # private to each thread (see _step_team)
                hi = 0
                inp = x
                for i in range(L):
                    d = self.dims[i + 1]
                    block_range(d, t, team, &lo, &hi)
                    act = self.acts[i]
                    if lo < hi:
                        gemv_block(inp, self.W[i], self.b[i], outs[i], n, self.dims[i], d, lo, hi,
                                   LINEAR if act == SOFTMAX else act)
                    fastnn_barrier()
                    inp = outs[i]
        if self.acts[L - 1] == SOFTMAX:
            bias_act(outs[L - 1], NULL, n, self.dims[L], SOFTMAX)

    def predict(self, const float[:, ::1] x, int nthreads=1):
        """The forward pass of ``x`` as a new (n, d_out) array; safe from many threads
        (scratch is per call). Raises ValueError when ``x`` holds NaN or infinity."""
        import numpy
        cdef Py_ssize_t n = x.shape[0], size = x.shape[0] * x.shape[1], i, bad = 0
        cdef int L = self.n_stages, widest = 1
        cdef const float* xp
        if x.shape[1] != self.dims[0]:
            raise ValueError(f"x has {x.shape[1]} features per sample but the model expects "
                             f"{self.dims[0]}")
        out = numpy.empty((n, self.dims[L]), dtype=numpy.float32)
        if n == 0:
            return out
        xp = &x[0, 0]
        with nogil:
            for i in range(size):
                if not isfinite(xp[i]):
                    bad += 1
        if bad:
            raise ValueError(f"x contains {bad} NaN or infinite value(s)")
        cdef float[:, ::1] result = out
        for i in range(1, L):
            if self.dims[i] > widest:
                widest = self.dims[i]
        cdef float* scratch = <float*>PyMem_Malloc(2 * n * widest * sizeof(float))
        cdef float** bufs = <float**>PyMem_Malloc(L * sizeof(float*))
        if scratch == NULL or bufs == NULL:
            PyMem_Free(scratch)
            PyMem_Free(bufs)
            raise MemoryError()
        try:
            for i in range(L - 1):
                bufs[i] = scratch + (i % 2) * n * widest
            bufs[L - 1] = &result[0, 0]
            with nogil:
                if n <= GEMV_MAX_ROWS:
                    self._forward_gemv(xp, n, bufs, nthreads)
                else:
                    self._forward_share(xp, n, bufs, False, 0, 1)
        finally:
            PyMem_Free(bufs)
            PyMem_Free(scratch)
        return out
