"""The compiled executor: a run of stages as one training step or one forward pass.

A ``Segment`` holds a table of stages (``fastnn.engine.stages``: Dense with its
activation and DropConnect, Activation, BatchNormalization, LayerNormalization,
Dropout, PReLU, Maxout, and the inference rewrite's Affine), pointers to their
weights and gradients (views into a model's flat buffers, kept alive by
references) and float32 workspaces for ``max_batch`` rows, allocated once.
``train_step`` runs forward, the loss and backward without returning to Python
(one ``nogil`` call); ``forward``/``backward`` split a step around work done
outside (host stages, a user's loss); ``predict`` runs inference into
per-call scratch, so many threads may call it at once on one Segment.

The math is not written here: activations, dropout masks, reductions, PReLU and
maxout come from ``_elementwise``, batch and layer norm from ``_norm``, the
losses from ``_losses`` (the kernels the "cpu" Ops run layer by layer), matrix
products from BLAS (``_blas.gemm_rm``) or, for a few rows, ``gemv.h``. This
module only walks the table, places the buffers and splits the work.

On one thread, a training batch norm runs together with the stages around it:
the Dense before it adds the column sums for its mean while each output row is
in cache, and the activation and dropout after it run row by row with the
normalisation (backward: mask, activation derivative and the batch-norm sums
per row), through row-level entry points of the same ``_norm`` loops.

Large steps can run on one OpenMP team that splits every matrix product between
its threads (``team_size``; stages other than Dense/Maxout then run on the
team's first thread between barriers); smaller ones leave the threading of each
product to BLAS.
"""
import numpy

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cython.parallel cimport parallel
from libc.stdint cimport int8_t, int32_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

cimport numpy as cnp

from . import _elementwise, _quant
from ._blas cimport gemm_rm
from ._elementwise cimport (GeneralRelu, act_backward, act_forward, act_needs_x, column_sums,
                            dropout_apply, ema_update, general_relu_backward,
                            general_relu_forward,
                            log_softmax_backward_rows, log_softmax_rows, maxout_backward_rows,
                            maxout_rows, multiply, prelu_backward_rows, prelu_rows,
                            softmax_backward_rows, softmax_rows)
from ._quant cimport bf16_rows, int8_rows, int8_scratch_bytes
from ._losses cimport Loss, SIGMOID_CE, SOFTMAX_CE, check_ids, loss_rows, prepare_loss
from ._norm cimport (affine_rows, bn_add_row, bn_backward_cols, bn_dx_rows, bn_fold,
                     bn_forward_cols, bn_grad_sums_rows, bn_inference_backward_cols,
                     bn_inverse_std, bn_normalize_rows, bn_stats_cols, ln_backward_rows,
                     ln_forward_rows)

cnp.import_array()

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static void fastnn_exec_barrier(void) {
        #pragma omp barrier
    }
    static int fastnn_exec_thread_num(void) { return omp_get_thread_num(); }
    static int fastnn_exec_team_size(void) { return omp_get_num_threads(); }
    static const int fastnn_exec_has_openmp = 1;
    #else
    static void fastnn_exec_barrier(void) {}
    static int fastnn_exec_thread_num(void) { return 0; }
    static int fastnn_exec_team_size(void) { return 1; }
    static const int fastnn_exec_has_openmp = 0;
    #endif
    """
    void barrier "fastnn_exec_barrier"() noexcept nogil
    int thread_num "fastnn_exec_thread_num"() noexcept nogil
    int team_size_now "fastnn_exec_team_size"() noexcept nogil
    const int has_openmp "fastnn_exec_has_openmp"

cdef extern from "gemv.h":
    void fastnn_gemv_rows(const float* x, const float* W, const float* b, float* y,
                          Py_ssize_t n, Py_ssize_t din, Py_ssize_t dout, Py_ssize_t lo,
                          Py_ssize_t hi) noexcept nogil

# Batches up to this size take the GEMV path in predict (weights streamed once per
# four rows, output columns split between threads). Measured on the 2-core VM (AMD
# EPYC, AVX2) for the 784-512-512-10 model, against scipy's OpenBLAS sgemm (slow at
# few rows: ~500 us for 1 to 8 rows): 1 thread, 8 rows 194 vs 543 us, 32 rows 737 vs
# 852, 64 rows 1324 vs 1324; 2 threads, 32 rows 470 vs 475, 48 rows 865 vs 573.
cdef int GEMV_MAX_ROWS = 32
# The GEMV path splits each layer's columns between OpenMP threads only when the
# model has at least this many weights (and the caller found free cores): the
# weights' stream from memory is what two cores share. Measured on the same VM, one
# call, 1 vs 2 threads: idle cores, 784-512-512-10 (6.7e5 weights) 54.6 vs 45.8 us;
# other processes loading the cores (best of 11), 784-2048-2048-10 (5.8e6) 498 vs
# 272 us, 784-512-512-10 38 vs 51 us, 256-512-512-10 (4.0e5) 23.5 vs 32.2 us,
# 64-128-128-10 2.1 vs 7.8 us (the barrier costs more than the product).
cdef double GEMV_THREAD_MIN_WEIGHTS = 1 << 19
# A training step is split between threads by us (one OpenMP team, a single-threaded
# BLAS call per thread's block of each product) only above this many multiply-adds;
# below, BLAS threads each product. Measured on the same VM, epochs at 2 threads:
# train_large (8.9e9 MACs a step) 3.7 s with the team against 4.1 s with BLAS
# threading; train_medium (2.6e8) 595 against 520 ms: each thread packs the shared
# operand of every product again, which small products do not repay.
cdef double TEAM_MIN_MACS = 1 << 30
cdef int MAX_TEAM = 64  # the team's per-thread loss sums live on the stack

# Stage kinds: the numbers of fastnn.engine.stages.Kind.
cdef enum:
    K_DENSE = 0
    K_ACTIVATION = 1
    K_BATCHNORM = 2
    K_LAYERNORM = 3
    K_DROPOUT = 4
    K_AFFINE = 5
    K_PRELU = 6
    K_MAXOUT = 7
    K_INT8_DENSE = 9    # inference only: QuantizedSegment
    K_BF16_DENSE = 10

# Row-wise activations (beside _elementwise.Act's elementwise codes).
cdef enum:
    A_SOFTMAX = 100
    A_LOG_SOFTMAX = 101
    A_GENERAL_RELU = 102  # elementwise, but with three parameters (run as row-wise)

# Activation kernels: an activation's kernel name (``ActivationFunction.kernel``) in
# upper case names its code in _elementwise.Act; softmax, log_softmax and general_relu
# (three parameters) are the executor's specials. The C code needs only LINEAR's code
# by name.
_SPECIAL_ACTIVATIONS = {"softmax": A_SOFTMAX, "log_softmax": A_LOG_SOFTMAX,
                        "general_relu": A_GENERAL_RELU}
cdef int LINEAR = _elementwise.Act.LINEAR
_KIND_NAMES = {K_DENSE: "DENSE", K_ACTIVATION: "ACTIVATION", K_BATCHNORM: "BATCHNORM",
               K_LAYERNORM: "LAYERNORM", K_DROPOUT: "DROPOUT", K_AFFINE: "AFFINE",
               K_PRELU: "PRELU", K_MAXOUT: "MAXOUT"}


ctypedef struct SC:
    int kind
    int act               # _elementwise.Act code, A_SOFTMAX or A_LOG_SOFTMAX
    float a               # the activation's parameter
    GeneralRelu grelu     # general_relu's three
    int pieces            # MAXOUT
    bint batch_stats      # BATCHNORM: batch statistics in training
    bint masked           # DENSE with DropConnect or DROPOUT with rate > 0
    bint trainable
    double rate, eps, momentum
    float keep            # 1 / (1 - rate)
    uint64_t seed         # this step's mask seed
    Py_ssize_t din, dout, zw   # zw: width of z (dout, or dout * pieces for MAXOUT)
    float* W
    float* b
    float* dW
    float* db
    float* gamma          # never NULL (ones when the layer has none)
    float* beta           # never NULL (zeros)
    float* dgamma
    float* dbeta
    float* mm
    float* mv
    float* alpha
    float* dalpha
    float* scale
    float* shift
    # workspaces (max_batch rows)
    float* y              # (n, dout) output
    float* z              # (n, zw) pre-activation; == y when the backward needs y only
    float* aux            # BN/LN xhat or the dropout mask (n, dout)
    int* argmax           # MAXOUT (n, dout)
    float* mean           # BN (d)
    float* var            # BN (d)
    float* inv            # BN (d) or LN (n) inverse standard deviations
    float* fscale         # frozen BN folded scale / shift (d)
    float* fshift
    float* wmask          # DropConnect kernel mask and masked kernel (din, dout)
    float* weff
    float* g              # gradient w.r.t. the stage input (n, din)
    # one-thread steps run a training batch norm with the activation and dropout after
    # it row by row (``_bn_chain_forward``/``_bn_chain_backward``):
    int act_at, drop_at   # BATCHNORM: the fused ACTIVATION / DROPOUT stage, or -1
    int chain_start       # last stage of such a chain: the BATCHNORM's index, else -1
    bint sums_for_next    # DENSE: its epilogue adds the next batch norm's column sums


# Spare predict scratch buffers a segment keeps for reuse (one per thread predicting at
# once, up to this many).
cdef int POOL_SIZE = 4


cdef class ScratchPool:
    """A segment's spare predict scratch: taken and given back under the GIL, so threads
    never share one, and reused, so a large call does not fault fresh pages in each
    time. Holds at most POOL_SIZE buffers of the largest size asked for."""

    cdef list spare

    def __cinit__(self):
        self.spare = []

    cdef object take(self, Py_ssize_t nbytes):
        buf = self.spare.pop() if self.spare else None
        if buf is None or (<cnp.ndarray>buf).shape[0] < nbytes:
            buf = numpy.empty(max(nbytes, 1), dtype=numpy.uint8)
        return buf

    cdef void give(self, buf):
        if len(self.spare) < POOL_SIZE:
            self.spare.append(buf)


cdef Py_ssize_t count_nonfinite(const float* x, Py_ssize_t size) noexcept nogil:
    """How many of x's values are NaN or infinite: an all-ones exponent, tested on the
    bits so that the loop vectorizes (a predict's input scan)."""
    cdef const uint32_t* bits = <const uint32_t*>x
    cdef Py_ssize_t i, bad = 0
    for i in range(size):
        bad += (bits[i] & 0x7f800000) == 0x7f800000
    return bad


cdef int refuse_nonfinite(x) except -1:
    """ValueError when the float32 C-contiguous array x holds NaN or an infinity."""
    cdef const float* xp = <const float*>cnp.PyArray_DATA(<cnp.ndarray>x)
    cdef Py_ssize_t bad, size = cnp.PyArray_SIZE(<cnp.ndarray>x)
    with nogil:
        bad = count_nonfinite(xp, size)
    if bad:
        raise ValueError(f"x contains {bad} NaN or infinite value(s)")
    return 0


cdef Py_ssize_t checked_predict_rows(x, out, Py_ssize_t width_in, Py_ssize_t width_out,
                                     str what, bint scan=True) except -1:
    """The rows of a predict call after its checks: x and out float32 C-contiguous 2-D
    arrays of widths ``width_in`` / ``width_out`` and the same rows, x finite (``scan``
    False: the caller finds non-finite values itself and calls ``refuse_nonfinite``)."""
    if (not isinstance(x, cnp.ndarray) or cnp.PyArray_TYPE(<cnp.ndarray>x) != cnp.NPY_FLOAT32
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x)
            or cnp.PyArray_NDIM(<cnp.ndarray>x) != 2):
        raise ValueError(f"{what}: x must be a C-contiguous 2-D float32 array")
    if cnp.PyArray_DIM(<cnp.ndarray>x, 1) != width_in:
        raise ValueError(f"x has {cnp.PyArray_DIM(<cnp.ndarray>x, 1)} features per sample "
                         f"but the model expects {width_in}")
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>x, 0)
    if (not isinstance(out, cnp.ndarray)
            or cnp.PyArray_TYPE(<cnp.ndarray>out) != cnp.NPY_FLOAT32
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>out)
            or cnp.PyArray_NDIM(<cnp.ndarray>out) != 2
            or cnp.PyArray_DIM(<cnp.ndarray>out, 0) != n
            or cnp.PyArray_DIM(<cnp.ndarray>out, 1) != width_out):
        raise ValueError(f"{what}: out must be a C-contiguous float32 array of shape "
                         f"({n}, {width_out})")
    if scan:
        refuse_nonfinite(x)
    return n


cdef inline bint elementwise_act(int act) noexcept nogil:
    """An _elementwise.Act code (one parameter, no rows needed)."""
    return act < A_SOFTMAX


cdef void block_range(Py_ssize_t size, int t, int team, Py_ssize_t* lo,
                      Py_ssize_t* hi) noexcept nogil:
    """Thread t's share [lo, hi) of ``size`` items in 16-item (64-byte) blocks."""
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
    """Thread t's block of C = op(A) @ op(B): its columns, or its rows when C is narrow."""
    cdef Py_ssize_t lo, hi
    if team == 1:
        gemm_rm(trans_a, trans_b, m, n, k, <float>1.0, a, lda, b, ldb, <float>0.0, c, ldc)
    elif split_columns(m, n, team):
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


cdef void epilogue(const SC* s, float* z, float* y, Py_ssize_t r0, Py_ssize_t r1,
                   Py_ssize_t lo, Py_ssize_t hi, double* sums) noexcept nogil:
    """Rows [r0, r1), columns [lo, hi) of a DENSE output: add the bias to z, then y =
    act(z) row by row while each row is in cache (row-wise activations need lo=0,
    hi=d). MAXOUT stages only add the bias. With ``sums``, the column sums of y are
    added to it (the statistics of a batch norm that follows)."""
    cdef Py_ssize_t r, j, d = s.zw
    cdef const float* b = s.b
    cdef int act = s.act if s.kind == K_DENSE else LINEAR
    cdef float* zr
    for r in range(r0, r1):
        zr = z + r * d
        if b != NULL:
            for j in range(lo, hi):
                zr[j] = zr[j] + b[j]
        if act == A_SOFTMAX:
            softmax_rows(z, y, d, r, r + 1)
        elif act == A_GENERAL_RELU:
            general_relu_forward(zr, y + r * d, lo, hi, &s.grelu)
        elif act == A_LOG_SOFTMAX:
            log_softmax_rows(z, y, d, r, r + 1)
        elif act != LINEAR or z != y:
            act_forward(act, zr, y + r * d, lo, hi, s.a)
        if sums != NULL:
            bn_add_row(y + r * d, sums, lo, hi)


cdef void dense_forward_share(SC* s, const float* x, Py_ssize_t n, const float* W, float* z,
                              float* y, int t, int team, double* sums) noexcept nogil:
    """Thread t's part of z = x @ W (+ bias, activation): its block of the product, then
    the epilogue on the same block (row-wise activations wait for whole rows)."""
    cdef Py_ssize_t lo = 0, hi = 0
    cdef Py_ssize_t d = s.zw
    gemm_share(t, team, False, False, <int>n, <int>d, <int>s.din, x, <int>s.din, W, <int>d,
               z, <int>d)
    if team == 1:
        epilogue(s, z, y, 0, n, 0, d, sums)
    elif (s.kind == K_MAXOUT or elementwise_act(s.act)) and split_columns(n, d, team):
        block_range(d, t, team, &lo, &hi)
        if lo < hi:
            epilogue(s, z, y, 0, n, lo, hi, NULL)
    else:
        barrier()
        block_range(n, t, team, &lo, &hi)
        if lo < hi:
            epilogue(s, z, y, lo, hi, 0, d, NULL)


cdef void act_rows_forward(int act, float a, const float* x, float* y, Py_ssize_t d,
                           Py_ssize_t r0, Py_ssize_t r1, const GeneralRelu* gr) noexcept nogil:
    if act == A_GENERAL_RELU:
        general_relu_forward(x, y, r0 * d, r1 * d, gr)
    elif act == A_SOFTMAX:
        softmax_rows(x, y, d, r0, r1)
    elif act == A_LOG_SOFTMAX:
        log_softmax_rows(x, y, d, r0, r1)
    else:
        act_forward(act, x, y, r0 * d, r1 * d, a)


cdef void act_rows_backward(int act, float a, const float* dy, const float* x, const float* y,
                            float* dx, Py_ssize_t d, Py_ssize_t r0, Py_ssize_t r1,
                            const GeneralRelu* gr) noexcept nogil:
    """dx = the activation's backward pass from (dy, x, y) on rows [r0, r1) (dx may be dy)."""
    if act == A_GENERAL_RELU:
        general_relu_backward(dy, x, dx, r0 * d, r1 * d, gr)
    elif act == A_SOFTMAX:
        softmax_backward_rows(dy, y, dx, d, r0, r1)
    elif act == A_LOG_SOFTMAX:
        log_softmax_backward_rows(dy, y, dx, d, r0, r1)
    elif act != LINEAR or dx != dy:
        act_backward(act, dy, x, y, dx, r0 * d, r1 * d, a)


cdef void other_forward(SC* s, const float* x, Py_ssize_t n, bint training,
                        float* y, const float* fscale, const float* fshift,
                        float* rowtmp, double* acc) noexcept nogil:
    """Forward of one non-matrix-product stage on the whole batch (one thread).
    ``fscale``/``fshift``: folded batch norm with fixed statistics; ``rowtmp``: n floats
    (layer norm's inverse deviations); ``acc``: reduction scratch (training only)."""
    cdef Py_ssize_t d = s.dout
    if s.kind == K_ACTIVATION:
        act_rows_forward(s.act, s.a, x, y, d, 0, n, &s.grelu)
    elif s.kind == K_BATCHNORM:
        if training and s.batch_stats:
            bn_forward_cols(x, s.gamma, s.beta, s.eps, y, s.aux, s.mean, s.var, s.inv,
                            acc, n, d, 0, d)
            ema_update(s.mm, s.mean, s.momentum, 0, d)
            ema_update(s.mv, s.var, s.momentum, 0, d)
        else:
            affine_rows(x, fscale, fshift, y, d, 0, n)
    elif s.kind == K_LAYERNORM:
        ln_forward_rows(x, s.gamma, s.beta, s.eps, y, s.aux if training else NULL,
                        s.inv if training else rowtmp, d, 0, n)
    elif s.kind == K_DROPOUT:
        if training and s.masked:
            dropout_apply(x, s.aux, y, s.seed, s.rate, s.keep, 0, n * d)
        elif y != x:
            memcpy(y, x, n * d * sizeof(float))
    elif s.kind == K_AFFINE:
        affine_rows(x, s.scale, s.shift, y, d, 0, n)
    elif s.kind == K_PRELU:
        prelu_rows(x, s.alpha, y, d, 0, n)


cdef class Segment:
    """A run of compilable stages: training step, forward/backward and predict (float32)."""

    cdef SC* st
    cdef int L
    cdef readonly int max_batch, width_in, width_out, n_seeds
    cdef int first_trainable      # first stage with gradients (L: none)
    cdef int widest               # widest row of any stage (inputs included)
    cdef int out_widest           # widest row a stage's forward writes (output or z)
    cdef int n_blocks             # predict's rotating scratch blocks: 3 with MAXOUT, else 2
    cdef double weights           # multiply-adds per row of the matrix products
    cdef bint has_gemm
    cdef double* acc              # reduction scratch (2 * widest + 2 doubles)
    cdef float* gout              # (max_batch, width_out) gradient of the head output
    cdef float* probs             # (max_batch, width_out) SOFTMAX_CE/SIGMOID_CE probabilities
    cdef list _keep
    cdef list _outs               # each stage's output workspace (max_batch, dout)
    cdef list _grads              # each stage's input-gradient workspace (max_batch, din)
    cdef object _x                # the batch of the last training forward (None: none)
    cdef Py_ssize_t _n
    cdef int _last_op             # loss of the last train_step (-1: forward only)
    cdef object _probs_arr, _gout_arr
    cdef ScratchPool _pool        # predict's scratch

    def __cinit__(self):
        self.st = NULL
        self.L = 0
        self._pool = ScratchPool()

    def __dealloc__(self):
        PyMem_Free(self.st)

    def __init__(self, list stages, int max_batch):
        cdef int i
        cdef SC* s
        if not stages:
            raise ValueError("Segment needs at least one stage")
        if max_batch < 1:
            raise ValueError(f"Segment max_batch must be >= 1, got {max_batch}")
        for i, stage in enumerate(stages):
            ok, reason = compilable(stage)
            if not ok:
                raise ValueError(f"stage {i} ({stage!r}) cannot be compiled: {reason}")
            if i and stage.width_in != stages[i - 1].width_out:
                raise ValueError(f"stage {i} ({stage!r}) takes {stage.width_in} features but "
                                 f"stage {i - 1} gives {stages[i - 1].width_out}")
        self.L = len(stages)
        self.max_batch = max_batch
        self.width_in = stages[0].width_in
        self.width_out = stages[len(stages) - 1].width_out
        self.st = <SC*>PyMem_Malloc(self.L * sizeof(SC))
        if self.st == NULL:
            raise MemoryError()
        memset(self.st, 0, self.L * sizeof(SC))
        self._keep = [stages]
        self._outs = []
        self._grads = []
        self._x = None
        self._last_op = -1
        self.first_trainable = self.L
        self.n_seeds = 0
        self.widest = max(self.width_in, self.width_out)
        self.out_widest = 1
        self.n_blocks = 2
        self.weights = 0
        self.has_gemm = False
        for i, stage in enumerate(stages):
            self._fill(&self.st[i], stage, max_batch)
            s = &self.st[i]
            if s.trainable and self.first_trainable == self.L:
                self.first_trainable = i
            if s.masked:
                self.n_seeds += 1
            self.widest = max(self.widest, s.zw, s.dout, s.din)
            self.out_widest = max(self.out_widest, s.zw, s.dout)
            if s.kind == K_MAXOUT:
                self.n_blocks = 3
            if s.kind == K_DENSE or s.kind == K_MAXOUT:
                self.weights += <double>s.din * s.zw
                self.has_gemm = True
        self.acc = <double*>self._buffer(2 * self.widest + 2, numpy.float64)
        self._plan_chains()
        self._gout_arr = numpy.zeros((max_batch, self.width_out), dtype=numpy.float32)
        self._probs_arr = numpy.zeros((max_batch, self.width_out), dtype=numpy.float32)
        self._keep += [self._gout_arr, self._probs_arr]
        self.gout = <float*>cnp.PyArray_DATA(self._gout_arr)
        self.probs = <float*>cnp.PyArray_DATA(self._probs_arr)

    cdef void _plan_chains(self):
        """Mark each training batch norm's chain: the elementwise activation and the
        dropout right after it, and the Dense before it that sums its columns."""
        cdef int i, j, end
        cdef SC* s
        for i in range(self.L):
            self.st[i].act_at = self.st[i].drop_at = self.st[i].chain_start = -1
            self.st[i].sums_for_next = False
        for i in range(self.L):
            s = &self.st[i]
            if s.kind != K_BATCHNORM or not s.batch_stats:
                continue
            j = i + 1
            if (j < self.L and self.st[j].kind == K_ACTIVATION
                    and elementwise_act(self.st[j].act)):
                s.act_at = j
                j += 1
            if j < self.L and self.st[j].kind == K_DROPOUT and self.st[j].masked:
                s.drop_at = j
            end = s.drop_at if s.drop_at >= 0 else (s.act_at if s.act_at >= 0 else i)
            self.st[end].chain_start = i
            if i > 0 and self.st[i - 1].kind == K_DENSE:
                self.st[i - 1].sums_for_next = True

    cdef void* _buffer(self, shape, dtype):
        """A zeroed workspace kept alive with the Segment."""
        arr = numpy.zeros(shape, dtype=dtype)
        self._keep.append(arr)
        return cnp.PyArray_DATA(arr)

    cdef float* _ptr(self, arr):
        if arr is None:
            return NULL
        self._keep.append(arr)
        return <float*>cnp.PyArray_DATA(arr)

    cdef void _fill(self, SC* s, stage, int mb) except *:
        """The table row of one stage: its arrays, hyperparameters and workspaces."""
        s.kind = int(stage.kind)
        s.din = stage.width_in
        s.dout = stage.width_out
        s.zw = s.dout
        s.act = LINEAR
        s.trainable = stage.trainable
        if s.kind in (K_DENSE, K_ACTIVATION):
            s.act, s.a = _act_code(stage.act_name, stage.act_params)
            if s.act == A_GENERAL_RELU:
                params = stage.act_params
                s.grelu.has_max = params.get("max_value") is not None
                s.grelu.max_value = float(params["max_value"]) if s.grelu.has_max else 0
                s.grelu.negative_slope = float(params.get("negative_slope") or 0.0)
                s.grelu.threshold = float(params.get("threshold") or 0.0)
        s.rate = float(stage.rate or 0.0)
        s.masked = s.kind in (K_DENSE, K_DROPOUT) and s.rate > 0
        s.keep = <float>(1.0 / (1.0 - s.rate)) if s.rate < 1 else 0
        s.eps = float(stage.epsilon or 0.0)
        s.momentum = float(stage.momentum or 0.0)
        s.batch_stats = bool(stage.batch_stats)
        s.W = self._ptr(stage.kernel)
        s.b = self._ptr(stage.bias)
        s.dW = self._ptr(stage.kernel_grad)
        s.db = self._ptr(stage.bias_grad)
        s.alpha = self._ptr(stage.alpha)
        s.dalpha = self._ptr(stage.alpha_grad)
        s.scale = self._ptr(stage.scale)
        s.shift = self._ptr(stage.shift)
        s.y = <float*>self._buffer((mb, s.dout), numpy.float32)
        self._outs.append(self._keep[len(self._keep) - 1])
        s.z = s.y
        s.g = <float*>self._buffer((mb, s.din), numpy.float32)
        self._grads.append(self._keep[len(self._keep) - 1])
        if s.kind == K_MAXOUT:
            s.pieces = stage.pieces
            s.zw = s.dout * s.pieces
            s.z = <float*>self._buffer((mb, s.zw), numpy.float32)
            s.argmax = <int*>self._buffer((mb, s.dout), numpy.int32)
        elif s.kind == K_DENSE:
            if s.act == A_GENERAL_RELU or (elementwise_act(s.act) and act_needs_x(s.act)):
                s.z = <float*>self._buffer((mb, s.dout), numpy.float32)
            if s.masked:
                s.wmask = <float*>self._buffer((s.din, s.dout), numpy.float32)
                s.weff = <float*>self._buffer((s.din, s.dout), numpy.float32)
        elif s.kind in (K_BATCHNORM, K_LAYERNORM):
            d = s.dout
            s.gamma = self._ptr(stage.gamma)
            s.beta = self._ptr(stage.beta)
            if s.gamma == NULL:
                s.gamma = self._ptr(numpy.ones(d, dtype=numpy.float32))
            if s.beta == NULL:
                s.beta = self._ptr(numpy.zeros(d, dtype=numpy.float32))
            s.dgamma = self._ptr(stage.gamma_grad)
            s.dbeta = self._ptr(stage.beta_grad)
            s.aux = <float*>self._buffer((mb, d), numpy.float32)
            if s.kind == K_BATCHNORM:
                s.mm = self._ptr(stage.moving_mean)
                s.mv = self._ptr(stage.moving_variance)
                s.mean = <float*>self._buffer(d, numpy.float32)
                s.var = <float*>self._buffer(d, numpy.float32)
                s.inv = <float*>self._buffer(d, numpy.float32)
                s.fscale = <float*>self._buffer(d, numpy.float32)
                s.fshift = <float*>self._buffer(d, numpy.float32)
            else:
                s.inv = <float*>self._buffer(mb, numpy.float32)
        elif s.kind == K_DROPOUT and s.masked:
            s.aux = <float*>self._buffer((mb, s.dout), numpy.float32)

    # ------------------------------------------------------------------ introspection
    def team_size(self, Py_ssize_t n, int nthreads):
        """Threads ``train_step`` should get for a batch of ``n``: 1 when the step is
        too small to split or when the kernels were built without OpenMP."""
        if nthreads <= 1 or not has_openmp:
            return 1
        if 3.0 * n * self.weights < TEAM_MIN_MACS:
            return 1
        return min(nthreads, MAX_TEAM)

    def predict_uses_blas(self, Py_ssize_t n):
        """Whether ``predict`` on ``n`` rows calls BLAS (more rows than the GEMV path takes)."""
        return self.has_gemm and n > GEMV_MAX_ROWS

    def predict_can_thread(self, Py_ssize_t n):
        """Whether ``predict`` on ``n`` rows would use more than one thread if given them."""
        return (self.has_gemm and n > GEMV_MAX_ROWS) or self.weights >= GEMV_THREAD_MIN_WEIGHTS

    def output(self, Py_ssize_t n):
        """The head output of the last forward/train_step: the probabilities after a
        SOFTMAX_CE/SIGMOID_CE train_step, else the last stage's output."""
        if self._last_op == SOFTMAX_CE or self._last_op == SIGMOID_CE:
            return self._probs_arr[:n]
        return self._outs[self.L - 1][:n]

    # ------------------------------------------------------------------ argument checks
    cdef const float* _rows(self, x, str what, Py_ssize_t width) except NULL:
        if (not isinstance(x, cnp.ndarray) or cnp.PyArray_TYPE(<cnp.ndarray>x) != cnp.NPY_FLOAT32
                or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x)
                or cnp.PyArray_NDIM(<cnp.ndarray>x) != 2):
            raise ValueError(f"Segment: {what} must be a C-contiguous 2-D float32 array")
        cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>x, 0)
        if cnp.PyArray_DIM(<cnp.ndarray>x, 1) != width:
            raise ValueError(f"Segment: {what} has {cnp.PyArray_DIM(<cnp.ndarray>x, 1)} "
                             f"columns, expected {width}")
        if n < 1 or n > self.max_batch:
            raise ValueError(f"Segment: {what} has {n} rows; this segment takes 1 to "
                             f"{self.max_batch}")
        return <const float*>cnp.PyArray_DATA(<cnp.ndarray>x)

    cdef int _set_seeds(self, seeds) except -1:
        cdef int i, k = 0
        cdef const uint64_t[::1] view
        if self.n_seeds == 0:
            return 0
        if seeds is None:
            raise ValueError(f"Segment: a training forward needs {self.n_seeds} mask seed(s)")
        view = numpy.ascontiguousarray(seeds, dtype=numpy.uint64)
        if view.shape[0] != self.n_seeds:
            raise ValueError(f"Segment: got {view.shape[0]} seeds, expected {self.n_seeds}")
        for i in range(self.L):
            if self.st[i].masked:
                self.st[i].seed = view[k]
                k += 1
        return 0

    # ------------------------------------------------------------------ training
    def forward(self, x, bint training, seeds=None):
        """The forward pass of x (n, width_in): with ``training``, batch statistics,
        masks from ``seeds`` (one per seeded stage, in stage order) and everything
        ``backward`` needs kept; else inference. Returns an (n, width_out) view of a
        workspace, valid until the next call."""
        cdef const float* xp = self._rows(x, "x", self.width_in)
        cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>x, 0)
        cdef int i
        self._last_op = -1
        if training:
            self._set_seeds(seeds)
            self._x = x
            self._n = n
            with nogil:
                self._forward_train(xp, n, 0, 1)
        else:
            self._x = None
            with nogil:
                for i in range(self.L):
                    if self.st[i].kind == K_BATCHNORM:
                        bn_fold(self.st[i].gamma, self.st[i].beta, self.st[i].mm, self.st[i].mv,
                                self.st[i].eps, self.st[i].fscale, self.st[i].fshift,
                                self.st[i].dout)
                self._forward_infer(xp, n, NULL, NULL, NULL, NULL, NULL, False, 0, 1)
        return self._outs[self.L - 1][:n]

    def backward(self, dy, bint need_dx=True):
        """The backward pass of the last training ``forward`` from dy (n, width_out), the
        gradient of the loss w.r.t. the segment output: writes every gradient array of
        the stages; returns dx (n, width_in) as a view of a workspace, or None without
        ``need_dx`` (stages below the first trainable one are then skipped)."""
        if self._x is None:
            raise RuntimeError("Segment.backward needs a forward(training=True) first")
        cdef Py_ssize_t n = self._n
        cdef const float* dyp = self._rows(dy, "dy", self.width_out)
        if cnp.PyArray_DIM(<cnp.ndarray>dy, 0) != n:
            raise ValueError(f"Segment: dy has {cnp.PyArray_DIM(<cnp.ndarray>dy, 0)} rows, the "
                             f"last forward had {n}")
        cdef const float* xp = <const float*>cnp.PyArray_DATA(<cnp.ndarray>self._x)
        with nogil:
            memcpy(self.gout, dyp, n * self.width_out * sizeof(float))
            self._backward(xp, n, need_dx, 0, 1)
        if not need_dx:
            return None
        return self._grads[0][:n]

    def train_step(self, x, targets, sample_weight, int loss_op, double label_smoothing,
                   double eps, double grad_scale, seeds, int nthreads):
        """Forward (training), the loss of ``loss_op`` (a ``_losses.LossOp``) on the head
        output and backward into the gradient arrays, in one nogil call. SOFTMAX_CE and
        SIGMOID_CE take the head's logits and leave the probabilities for ``output``.
        Returns the loss sum, as ``_losses.loss`` returns it for the same arguments.
        With ``nthreads`` > 1 (see ``team_size``) one OpenMP team runs the step, each
        thread computing its block of every product with a single-threaded BLAS call
        (the caller holds the BLAS pool to one thread meanwhile)."""
        cdef const float* xp = self._rows(x, "x", self.width_in)
        cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>x, 0)
        cdef Loss L
        cdef double total = 0
        cdef double partial[64]
        cdef int i
        cdef bint ok = True
        kept = prepare_loss(&L, loss_op, n, self.width_out, cnp.NPY_FLOAT32, targets,
                            sample_weight, grad_scale, label_smoothing, eps)
        if kept is None:
            raise ValueError(f"Segment.train_step: targets/sample_weight do not fit predictions "
                             f"of shape ({n}, {self.width_out}) for loss {loss_op}")
        L.probs = self.probs if (loss_op == SOFTMAX_CE or loss_op == SIGMOID_CE) else NULL
        L.grad = self.gout
        if L.dense == NULL:
            with nogil:
                ok = check_ids(&L, n)
            if not ok:
                raise ValueError(f"class ids must lie in [0, {L.k}): the predictions have "
                                 f"{L.k} columns")
        self._set_seeds(seeds)
        if nthreads < 1 or not has_openmp:
            nthreads = 1
        if nthreads > MAX_TEAM:
            nthreads = MAX_TEAM
        self._x = x
        self._n = n
        self._last_op = loss_op
        with nogil:
            for i in range(nthreads):
                partial[i] = 0
            if nthreads > 1:
                self._step_team(xp, n, &L, partial, nthreads)
            else:
                self._step_share(xp, n, &L, partial, 0, 1)
            for i in range(nthreads):
                total += partial[i]
        return total

    cdef void _step_team(self, const float* x, Py_ssize_t n, const Loss* L, double* partial,
                         int nthreads) noexcept nogil:
        cdef int t, team
        with parallel(num_threads=nthreads):
            t = thread_num()
            team = team_size_now()
            self._step_share(x, n, L, partial, t, team)

    cdef void _step_share(self, const float* x, Py_ssize_t n, const Loss* L, double* partial,
                          int t, int team) noexcept nogil:
        """Thread t's part of a step (t=0, team=1: the whole step, BLAS threading each
        product): forward, its block of rows of the loss, backward."""
        cdef Py_ssize_t lo = 0, hi = 0
        self._forward_train(x, n, t, team)
        block_range(n, t, team, &lo, &hi)
        if lo < hi:
            partial[t] = loss_rows(L, self.st[self.L - 1].y, lo, hi)
        barrier()
        self._backward(x, n, False, t, team)

    cdef void _forward_train(self, const float* x, Py_ssize_t n, int t, int team) noexcept nogil:
        cdef int i = 0
        cdef SC* s
        cdef const float* inp = x
        cdef const float* W
        while i < self.L:
            s = &self.st[i]
            if s.kind == K_DENSE or s.kind == K_MAXOUT:
                W = s.W
                if s.masked:
                    if t == 0:
                        dropout_apply(s.W, s.wmask, s.weff, s.seed, s.rate, s.keep, 0,
                                      s.din * s.dout)
                    barrier()
                    W = s.weff
                if team == 1 and s.sums_for_next:
                    memset(self.acc, 0, s.dout * sizeof(double))
                dense_forward_share(s, inp, n, W, s.z, s.y if s.kind == K_DENSE else s.z,
                                    t, team,
                                    self.acc if (team == 1 and s.sums_for_next) else NULL)
                if s.kind == K_MAXOUT:
                    barrier()
                    if t == 0:
                        maxout_rows(s.z, s.y, s.argmax, s.dout, s.pieces, 0, n)
            elif s.kind == K_BATCHNORM and s.batch_stats and team == 1:
                i = self._bn_chain_forward(i, inp, n)
                s = &self.st[i]
            elif t == 0:
                if s.kind == K_BATCHNORM and not s.batch_stats:
                    bn_fold(s.gamma, s.beta, s.mm, s.mv, s.eps, s.fscale, s.fshift, s.dout)
                    bn_inverse_std(s.mv, s.eps, s.inv, s.dout)
                other_forward(s, inp, n, True, s.y, s.fscale, s.fshift, NULL, self.acc)
            barrier()
            inp = s.y
            i += 1

    cdef int _bn_chain_forward(self, int i, const float* x, Py_ssize_t n) noexcept nogil:
        """Training batch norm at stage i (one thread), with the activation and dropout
        fused after it: the statistics (the column sums come from the Dense epilogue
        before, when it added them), the moving averages, then row by row: normalise,
        activate, drop, while each row is in cache. Returns the chain's last stage."""
        cdef SC* s = &self.st[i]
        cdef SC* a = NULL
        cdef SC* dr = NULL
        cdef Py_ssize_t r, d = s.dout
        cdef const float* h
        if i == 0 or not self.st[i - 1].sums_for_next:
            memset(self.acc, 0, d * sizeof(double))
            for r in range(n):
                bn_add_row(x + r * d, self.acc, 0, d)
        bn_stats_cols(x, self.acc, s.mean, s.var, s.inv, s.eps, n, d, 0, d)
        ema_update(s.mm, s.mean, s.momentum, 0, d)
        ema_update(s.mv, s.var, s.momentum, 0, d)
        if s.act_at >= 0:
            a = &self.st[s.act_at]
        if s.drop_at >= 0:
            dr = &self.st[s.drop_at]
        for r in range(n):
            bn_normalize_rows(x, s.mean, s.inv, s.gamma, s.beta, s.aux, s.y, d, r, r + 1)
            h = s.y
            if a != NULL:
                act_forward(a.act, s.y, a.y, r * d, (r + 1) * d, a.a)
                h = a.y
            if dr != NULL:
                dropout_apply(h, dr.aux, dr.y, dr.seed, dr.rate, dr.keep, r * d, (r + 1) * d)
        if s.drop_at >= 0:
            return s.drop_at
        if s.act_at >= 0:
            return s.act_at
        return i

    cdef void _backward(self, const float* x, Py_ssize_t n, bint need_dx, int t,
                        int team) noexcept nogil:
        """Backward from ``gout`` (the gradient w.r.t. the head output) down to stage 0
        with ``need_dx``, else down to the first trainable stage (its input gradient
        skipped)."""
        cdef int i, last = 0 if need_dx else self.first_trainable
        cdef SC* s
        cdef const float* dy
        cdef const float* inp
        cdef bint want_dx
        i = self.L - 1
        while i >= last:
            s = &self.st[i]
            dy = self.gout if i == self.L - 1 else self.st[i + 1].g
            if team == 1 and s.chain_start >= 0:
                i = s.chain_start
                self._bn_chain_backward(i, dy, n, i > last or need_dx)
                i -= 1
                continue
            inp = x if i == 0 else self.st[i - 1].y
            want_dx = i > last or need_dx
            if s.kind == K_DENSE or s.kind == K_MAXOUT:
                self._dense_backward(s, inp, <float*>dy, n, want_dx, t, team)
            elif t == 0:
                self._other_backward(s, inp, <float*>dy, n, want_dx)
            barrier()
            i -= 1

    cdef void _bn_chain_backward(self, int i, const float* dy, Py_ssize_t n,
                                 bint want_dx) noexcept nogil:
        """Backward of a chain that ``_bn_chain_forward`` ran (one thread), from dy, the
        gradient w.r.t. its last stage's output: row by row through the dropout mask and
        the activation, adding the batch-norm sums; then the batch-norm input gradient."""
        cdef SC* s = &self.st[i]
        cdef SC* a = NULL
        cdef SC* dr = NULL
        cdef Py_ssize_t r, j, d = s.dout
        cdef const float* g
        cdef float* gbn
        cdef float* dgamma = s.dgamma if s.dgamma != NULL else s.fscale
        cdef float* dbeta = s.dbeta if s.dbeta != NULL else s.fshift
        if s.act_at >= 0:
            a = &self.st[s.act_at]
        if s.drop_at >= 0:
            dr = &self.st[s.drop_at]
        # the gradient w.r.t. the batch norm's output: its successor's input gradient
        gbn = (a.g if a != NULL else dr.g) if (a != NULL or dr != NULL) else <float*>dy
        memset(self.acc, 0, 2 * d * sizeof(double))
        for r in range(n):
            g = dy
            if dr != NULL:
                multiply(dy, dr.aux, dr.g, r * d, (r + 1) * d)
                g = dr.g
            if a != NULL:
                act_backward(a.act, g, s.y, a.y, a.g, r * d, (r + 1) * d, a.a)
            bn_grad_sums_rows(gbn, s.aux, self.acc, d, r, r + 1)
        for j in range(d):
            dbeta[j] = <float>self.acc[j]
            dgamma[j] = <float>self.acc[d + j]
        if want_dx:
            bn_dx_rows(gbn, s.aux, s.gamma, s.inv, dgamma, dbeta, s.g, n, d, 0, n)

    cdef void _dense_backward(self, SC* s, const float* inp, float* dy, Py_ssize_t n,
                              bint want_dx, int t, int team) noexcept nogil:
        """dz from dy through the activation (or the maxout routing), the kernel and bias
        gradients, and the input gradient when wanted."""
        cdef Py_ssize_t lo = 0, hi = 0, r, d = s.zw
        cdef float* dz = dy
        if s.kind == K_MAXOUT:
            dz = s.z
            if t == 0:
                maxout_backward_rows(dy, s.argmax, dz, s.dout, s.pieces, 0, n)
            barrier()
        if team == 1:
            if s.kind == K_DENSE:
                act_rows_backward(s.act, s.a, dy, s.z, s.y, dz, d, 0, n, &s.grelu)
            if s.db != NULL:
                column_sums(dz, self.acc, s.db, n, d, 0, d)
        elif s.kind == K_DENSE and not elementwise_act(s.act):
            block_range(n, t, team, &lo, &hi)
            if lo < hi:
                act_rows_backward(s.act, s.a, dy, s.z, s.y, dz, d, lo, hi, &s.grelu)
            barrier()
            block_range(d, t, team, &lo, &hi)
            if lo < hi and s.db != NULL:
                column_sums(dz, self.acc, s.db, n, d, lo, hi)
        else:
            block_range(d, t, team, &lo, &hi)
            if lo < hi:
                if s.kind == K_DENSE and s.act != LINEAR:
                    for r in range(n):
                        act_backward(s.act, dy + r * d, s.z + r * d, s.y + r * d,
                                     dz + r * d, lo, hi, s.a)
                if s.db != NULL:
                    column_sums(dz, self.acc, s.db, n, d, lo, hi)
        barrier()
        if s.dW != NULL:
            gemm_share(t, team, True, False, <int>s.din, <int>d, <int>n, inp, <int>s.din,
                       dz, <int>d, s.dW, <int>d)
            if s.masked:
                barrier()
                if t == 0:
                    multiply(s.dW, s.wmask, s.dW, 0, s.din * s.dout)
        if want_dx:
            gemm_share(t, team, False, True, <int>n, <int>s.din, <int>d, dz, <int>d,
                       s.weff if s.masked else s.W, <int>d, s.g, <int>s.din)

    cdef void _other_backward(self, SC* s, const float* inp, float* dy, Py_ssize_t n,
                              bint want_dx) noexcept nogil:
        cdef Py_ssize_t j, d = s.dout
        cdef float* dgamma
        cdef float* dbeta
        if s.kind == K_ACTIVATION:
            if want_dx:
                act_rows_backward(s.act, s.a, dy, inp, s.y, s.g, d, 0, n, &s.grelu)
        elif s.kind == K_BATCHNORM:
            if s.batch_stats:
                # the kernel writes both sums: the folded-statistics vectors (unused with
                # batch statistics) take the absent ones
                dgamma = s.dgamma if s.dgamma != NULL else s.fscale
                dbeta = s.dbeta if s.dbeta != NULL else s.fshift
                bn_backward_cols(dy, s.aux, s.gamma, s.inv, s.g, dgamma, dbeta, self.acc,
                                 n, d, 0, d)
            else:
                bn_inference_backward_cols(dy, inp, s.gamma, s.mm, s.inv,
                                           s.g if want_dx else NULL, s.dgamma, s.dbeta,
                                           self.acc, n, d, 0, d)
        elif s.kind == K_LAYERNORM:
            memset(self.acc, 0, 2 * d * sizeof(double))
            ln_backward_rows(dy, s.aux, s.gamma, s.inv, s.g, self.acc, d, 0, n)
            for j in range(d):
                if s.dbeta != NULL:
                    s.dbeta[j] = <float>self.acc[j]
                if s.dgamma != NULL:
                    s.dgamma[j] = <float>self.acc[d + j]
        elif s.kind == K_DROPOUT:
            if want_dx:
                if s.masked:
                    multiply(dy, s.aux, s.g, 0, n * d)
                else:
                    memcpy(s.g, dy, n * d * sizeof(float))
        elif s.kind == K_AFFINE:
            if want_dx:
                affine_grad(dy, s.scale, s.g, d, n)
        elif s.kind == K_PRELU:
            if s.dalpha != NULL:
                memset(self.acc, 0, d * sizeof(double))
            prelu_backward_rows(dy, inp, s.alpha, s.g if want_dx else NULL,
                                self.acc if s.dalpha != NULL else NULL, d, 0, n)
            if s.dalpha != NULL:
                for j in range(d):
                    s.dalpha[j] = <float>self.acc[j]

    # ------------------------------------------------------------------ inference
    cdef void _forward_infer(self, const float* x, Py_ssize_t n, float** outs, float** zs,
                             float* out, float* folds, float* rowtmp, bint gemv, int t,
                             int team) noexcept nogil:
        """Inference of x into ``out`` (NULL: the stages' own workspaces, when ``outs``
        is NULL too). ``outs``/``zs``: per-call buffers of each stage (predict);
        ``folds``: 2 * d floats per batch-norm stage holding its folded scale and shift
        (NULL: the stages' own). ``gemv``: the products of a few rows go through gemv.h,
        their columns split between the team; other stages run on thread 0."""
        cdef int i
        cdef SC* s
        cdef const float* inp = x
        cdef float* y
        cdef float* z
        cdef float* fs
        cdef float* fsh
        cdef Py_ssize_t lo = 0, hi = 0, d, j
        cdef Py_ssize_t fold_at = 0
        for i in range(self.L):
            s = &self.st[i]
            y = s.y if outs == NULL else outs[i]
            z = s.z if zs == NULL else zs[i]
            if s.kind == K_DENSE and zs != NULL:
                z = y    # inference keeps no pre-activation
            if s.kind == K_DENSE or s.kind == K_MAXOUT:
                d = s.zw
                if s.kind == K_DENSE and not elementwise_act(s.act):
                    z = y
                if gemv:
                    block_range(d, t, team, &lo, &hi)
                    if lo < hi:
                        fastnn_gemv_rows(inp, s.W, s.b, z, n, s.din, d, lo, hi)
                        if s.kind == K_DENSE and elementwise_act(s.act) and (
                                s.act != LINEAR or z != y):
                            for j in range(n):
                                act_forward(s.act, z + j * d, y + j * d, lo, hi, s.a)
                    barrier()
                    if t == 0 and s.kind == K_DENSE and not elementwise_act(s.act):
                        act_rows_forward(s.act, s.a, z, y, d, 0, n, &s.grelu)
                else:
                    dense_forward_share(s, inp, n, s.W, z, y if s.kind == K_DENSE else z,
                                        t, team, NULL)
                if s.kind == K_MAXOUT:
                    barrier()
                    if t == 0:
                        maxout_rows(z, y, NULL, s.dout, s.pieces, 0, n)
            elif t == 0:
                fs = s.fscale
                fsh = s.fshift
                if s.kind == K_BATCHNORM and folds != NULL:
                    fs = folds + fold_at
                    fsh = folds + fold_at + s.dout
                if s.kind == K_DROPOUT:
                    if y != inp:
                        memcpy(y, inp, n * s.dout * sizeof(float))
                else:
                    other_forward(s, inp, n, False, y, fs, fsh,
                                  rowtmp if rowtmp != NULL else s.inv, NULL)
            if s.kind == K_BATCHNORM:
                fold_at += 2 * s.dout
            barrier()
            inp = y

    def predict(self, x, out, int nthreads=1):
        """Inference of x (n, width_in) into ``out`` (n, width_out), both float32
        C-contiguous and caller-owned: batch norm with its moving statistics, dropout as
        the identity. Scratch is per call, so many threads may predict at once. Raises
        ValueError when x holds NaN or infinity."""
        cdef Py_ssize_t n = checked_predict_rows(x, out, self.width_in, self.width_out,
                                                 "Segment.predict")
        if n == 0:
            return out
        cdef const float* xp = <const float*>cnp.PyArray_DATA(<cnp.ndarray>x)
        cdef float* op = <float*>cnp.PyArray_DATA(<cnp.ndarray>out)
        cdef Py_ssize_t i, nfold = 0
        for i in range(self.L):
            if self.st[i].kind == K_BATCHNORM:
                nfold += 2 * self.st[i].dout
        # the stages' rotating output blocks, the folded batch norms, a row of scratch,
        # then the per-stage buffer pointers (8-byte aligned)
        cdef Py_ssize_t blocks = self.n_blocks * n * self.out_widest
        cdef Py_ssize_t floats = (blocks + nfold + n + 1) // 2 * 2
        buf = self._pool.take(floats * sizeof(float) + 2 * self.L * sizeof(float*))
        cdef float* scratch = <float*>cnp.PyArray_DATA(<cnp.ndarray>buf)
        cdef float** bufs = <float**>(scratch + floats)
        self._place(xp, op, scratch, n, bufs)
        with nogil:
            self._predict_nogil(xp, n, bufs, op, scratch + blocks, scratch + blocks + nfold,
                                nthreads)
        self._pool.give(buf)
        return out

    cdef void _place(self, const float* x, float* out, float* scratch, Py_ssize_t n,
                     float** bufs) noexcept:
        """Per-call buffers of predict: bufs[i] stage i's output, bufs[L + i] its
        pre-activation (MAXOUT only); the scratch blocks rotate so no stage writes its
        own input. Inference dropout passes its input on."""
        cdef int i, cur = -1, o, zi
        cdef Py_ssize_t block = n * self.out_widest
        cdef int nb = self.n_blocks
        cdef const float* inp = x
        for i in range(self.L):
            o = (cur + 1) % nb
            zi = (cur + 2) % nb       # a third block: MAXOUT's pieces (2 blocks: unused)
            if self.st[i].kind == K_DROPOUT and i < self.L - 1:
                bufs[i] = <float*>inp     # the identity: the next stage reads the input
                bufs[self.L + i] = bufs[i]
                continue
            bufs[i] = out if i == self.L - 1 else scratch + o * block
            bufs[self.L + i] = scratch + zi * block
            if i < self.L - 1:
                cur = o
            inp = bufs[i]

    cdef void _predict_nogil(self, const float* x, Py_ssize_t n, float** bufs, float* out,
                             float* folds, float* rowtmp, int nthreads) noexcept nogil:
        cdef int i, t, team
        cdef Py_ssize_t at = 0
        for i in range(self.L):
            if self.st[i].kind == K_BATCHNORM:
                bn_fold(self.st[i].gamma, self.st[i].beta, self.st[i].mm, self.st[i].mv,
                        self.st[i].eps, folds + at, folds + at + self.st[i].dout,
                        self.st[i].dout)
                at += 2 * self.st[i].dout
        if n > GEMV_MAX_ROWS:
            self._forward_infer(x, n, bufs, bufs + self.L, out, folds, rowtmp, False, 0, 1)
            return
        if self.weights < GEMV_THREAD_MIN_WEIGHTS or not has_openmp:
            nthreads = 1
        if nthreads <= 1:
            self._forward_infer(x, n, bufs, bufs + self.L, out, folds, rowtmp, True, 0, 1)
            return
        with parallel(num_threads=nthreads):
            t = thread_num()
            team = team_size_now()
            self._forward_infer(x, n, bufs, bufs + self.L, out, folds, rowtmp, True, t, team)


cdef void affine_grad(const float* dy, const float* scale, float* dx, Py_ssize_t d,
                      Py_ssize_t n) noexcept nogil:
    """dx = dy * scale per column (the gradient of an AFFINE stage's input)."""
    cdef Py_ssize_t r, j
    for r in range(n):
        for j in range(d):
            dx[r * d + j] = dy[r * d + j] * scale[j]


def _act_code(name, params):
    """(code, parameter) of an activation kernel; ValueError when there is none. The
    parameter is the one value in ``params`` (0.0 when empty)."""
    code = _SPECIAL_ACTIVATIONS.get(name)
    if code is None:
        key = str(name)
        member = _elementwise.Act.__members__.get(key.upper()) if key.islower() else None
        if member is None or member in _elementwise.FORWARD_ONLY:
            raise ValueError(f"no compiled kernel for activation {name!r}")
        code = int(member)
    params = dict(params or {})
    if code == A_GENERAL_RELU:  # its three parameters are read into the stage's table
        for key in ("max_value", "negative_slope", "threshold"):
            params.pop(key, None)
    if len(params) > 1:
        raise ValueError(f"activation {name!r} with parameters {sorted(params)} has no "
                         f"compiled kernel (a kernel takes one parameter)")
    value = float(next(iter(params.values()))) if params else 0.0
    return code, value


def _check_array(arr, name, shape):
    if arr is None:
        return None
    if not isinstance(arr, numpy.ndarray):
        return f"{name} is not a NumPy array"
    if arr.dtype != numpy.float32:
        return f"{name} is {arr.dtype}, not float32"
    if not arr.flags.c_contiguous:
        return f"{name} is not C-contiguous"
    if tuple(arr.shape) != tuple(shape):
        return f"{name} has shape {tuple(arr.shape)}, expected {tuple(shape)}"
    return None


def compilable(stage):
    """(True, "") when a Segment can run ``stage``, else (False, the reason)."""
    kind = int(stage.kind)
    if kind not in _KIND_NAMES:
        return False, f"stage kind {getattr(stage.kind, 'name', kind)} has no compiled kernel"
    din, dout = stage.width_in, stage.width_out
    if din < 1 or dout < 1:
        return False, f"widths {din} -> {dout}"
    checks = []
    if kind in (K_DENSE, K_ACTIVATION):
        try:
            _act_code(stage.act_name, stage.act_params)
        except ValueError as e:
            return False, str(e)
    if kind == K_DENSE or kind == K_MAXOUT:
        pieces = stage.pieces if kind == K_MAXOUT else 1
        if kind == K_MAXOUT and pieces < 1:
            return False, f"maxout pieces {pieces}"
        if stage.kernel is None:
            return False, "no kernel"
        checks += [(stage.kernel, "kernel", (din, dout * pieces)),
                   (stage.kernel_grad, "kernel_grad", (din, dout * pieces)),
                   (stage.bias, "bias", (dout * pieces,)),
                   (stage.bias_grad, "bias_grad", (dout * pieces,))]
        if stage.bias is None and stage.bias_grad is not None:
            return False, "bias_grad without a bias"
        if kind == K_DENSE and not 0 <= stage.rate < 1:
            return False, f"DropConnect rate {stage.rate}"
    elif din != dout:
        return False, f"a {_KIND_NAMES[kind]} stage keeps its width, got {din} -> {dout}"
    if kind in (K_BATCHNORM, K_LAYERNORM):
        if not stage.epsilon > 0:
            return False, f"epsilon {stage.epsilon}"
        checks += [(stage.gamma, "gamma", (dout,)), (stage.beta, "beta", (dout,)),
                   (stage.gamma_grad, "gamma_grad", (dout,)),
                   (stage.beta_grad, "beta_grad", (dout,))]
        if kind == K_BATCHNORM:
            if stage.moving_mean is None or stage.moving_variance is None:
                return False, "no moving statistics"
            checks += [(stage.moving_mean, "moving_mean", (dout,)),
                       (stage.moving_variance, "moving_variance", (dout,))]
    elif kind == K_DROPOUT:
        if not 0 <= stage.rate < 1:
            return False, f"dropout rate {stage.rate}"
    if kind in (K_DENSE, K_DROPOUT) and bool(stage.seeded) != (stage.rate > 0):
        return False, f"rate {stage.rate} with seeded={stage.seeded}: a mask needs a seed"
    elif kind == K_AFFINE:
        if stage.scale is None or stage.shift is None:
            return False, "no scale/shift"
        checks += [(stage.scale, "scale", (dout,)), (stage.shift, "shift", (dout,))]
    elif kind == K_PRELU:
        if stage.alpha is None:
            return False, "no alpha"
        checks += [(stage.alpha, "alpha", (dout,)), (stage.alpha_grad, "alpha_grad", (dout,))]
    for arr, name, shape in checks:
        problem = _check_array(arr, name, shape)
        if problem:
            return False, problem
    return True, ""


# ---------------------------------------------------------------------- low precision
ctypedef struct QS:
    int kind              # K_INT8_DENSE or K_BF16_DENSE
    int act               # _elementwise.Act code, A_SOFTMAX or A_LOG_SOFTMAX
    float a
    bint relu             # ReLU in the product's epilogue
    Py_ssize_t k, n
    const int8_t* w8      # packed int8 weights and their column sums (INT8)
    const int32_t* colsum
    const float* scales
    const uint16_t* w16   # packed bfloat16 weights (BF16)
    const float* bias


def quantized_compilable(stage):
    """(True, "") when a QuantizedSegment can run ``stage``, else (False, the reason)."""
    kind = int(stage.kind)
    if kind != K_INT8_DENSE and kind != K_BF16_DENSE:
        return False, f"stage kind {stage.kind!r} is not a low-precision Dense"
    packed = stage.quantized.packed
    if not isinstance(packed, (_quant.PackedInt8, _quant.PackedBf16)):
        return False, "the weights are not packed for the kernels"
    try:
        code, _ = _act_code(stage.act_name, stage.act_params)
    except ValueError as exc:
        return False, str(exc)
    if code == A_GENERAL_RELU:
        return False, "general_relu runs on the Ops after a low-precision product"
    return True, ""


# Rows a QuantizedSegment carries through all its stages at a time (their activations
# stay in cache between stages), and the fewest rows a thread of a team takes.
cdef enum:
    Q_CHUNK = 64
    Q_TEAM_ROWS = 16
    Q_PIECE = 32  # rows a team member takes at a time


cdef extern from *:
    """
    static Py_ssize_t fastnn_q_take(Py_ssize_t* next) {
        return __atomic_fetch_add(next, 1, __ATOMIC_RELAXED);
    }
    """
    Py_ssize_t q_take "fastnn_q_take"(Py_ssize_t* next) noexcept nogil


cdef class QuantizedSegment:
    """Inference over a run of INT8_DENSE / BF16_DENSE stages in one ``nogil`` call: each
    stage's product with its packed weights (``_quant``: int8 rows quantized at run
    time, or bfloat16 weights in float32), its ReLU in the epilogue or its activation
    after. Every stage works row by row, so the rows go through all the stages in
    chunks of Q_CHUNK, and a team of threads splits the rows (one OpenMP region for
    the whole segment, no barrier: each thread takes Q_PIECE rows at a time through
    every stage, so a thread that the OS holds back takes fewer); with too few rows for
    a team, each product splits its columns instead. Scratch is per call, so many
    threads may predict at once."""

    cdef QS* st
    cdef int L
    cdef readonly int width_in, width_out
    cdef Py_ssize_t widest, widest_k
    cdef double weights
    cdef list _keep
    cdef ScratchPool _pool

    def __cinit__(self):
        self.st = NULL
        self.L = 0
        self._pool = ScratchPool()

    def __dealloc__(self):
        PyMem_Free(self.st)

    def __init__(self, list stages):
        cdef int i
        cdef QS* q
        if not stages:
            raise ValueError("QuantizedSegment needs at least one stage")
        self.st = <QS*>PyMem_Malloc(len(stages) * sizeof(QS))
        if self.st == NULL:
            raise MemoryError()
        self.L = len(stages)
        self._keep = []
        self.widest = self.widest_k = 0
        self.weights = 0
        for i, stage in enumerate(stages):
            ok, reason = quantized_compilable(stage)
            if not ok:
                raise ValueError(f"QuantizedSegment cannot run stage {i} ({stage!r}): {reason}")
            if i and stage.width_in != stages[i - 1].width_out:
                raise ValueError(f"stage {i} takes {stage.width_in} inputs, the one before "
                                 f"gives {stages[i - 1].width_out}")
            qd = stage.quantized
            q = &self.st[i]
            q.kind = int(stage.kind)
            q.act, q.a = _act_code(stage.act_name, stage.act_params)
            q.relu = qd.relu
            q.k, q.n = qd.packed.k, qd.packed.n
            q.w8 = NULL
            q.colsum = NULL
            q.scales = NULL
            q.w16 = NULL
            q.bias = NULL
            if q.kind == K_INT8_DENSE:
                q.w8 = <const int8_t*>self._data(qd.packed.data, numpy.int8)
                q.colsum = <const int32_t*>self._data(qd.packed.colsum, numpy.int32)
                q.scales = <const float*>self._data(qd.scales, numpy.float32)
            else:
                q.w16 = <const uint16_t*>self._data(qd.packed.data, numpy.uint16)
            if qd.bias is not None:
                q.bias = <const float*>self._data(qd.bias, numpy.float32)
            self.widest = max(self.widest, q.n)
            self.widest_k = max(self.widest_k, (q.k + 3) // 4 * 4)
            self.weights += <double>q.k * q.n
        self.width_in = stages[0].width_in
        self.width_out = stages[self.L - 1].width_out  # (no wraparound: no [-1])

    cdef const void* _data(self, array, dtype) except NULL:
        arr = numpy.ascontiguousarray(array, dtype=dtype)
        self._keep.append(arr)
        return cnp.PyArray_DATA(<cnp.ndarray>arr)

    def predict_uses_blas(self, Py_ssize_t n):
        """The low-precision products are our own kernels: never BLAS."""
        return False

    def predict_can_thread(self, Py_ssize_t n):
        """Whether the products are large enough for the kernels to split (2^24 MACs)."""
        return n * self.weights >= (1 << 24)

    def predict(self, x, out, int nthreads=1):
        """Inference of x (n, width_in) into ``out`` (n, width_out), both float32
        C-contiguous and caller-owned. Raises ValueError when x holds NaN or infinity
        (an int8 first stage finds them while quantizing its rows: no separate scan)."""
        cdef bint int8_first = self.st[0].kind == K_INT8_DENSE
        cdef Py_ssize_t n = checked_predict_rows(x, out, self.width_in, self.width_out,
                                                 "QuantizedSegment.predict", not int8_first)
        if n == 0:
            return out
        cdef const float* xp = <const float*>cnp.PyArray_DATA(<cnp.ndarray>x)
        cdef float* op = <float*>cnp.PyArray_DATA(<cnp.ndarray>out)
        cdef int team = nthreads if nthreads > 1 and n >= Q_TEAM_ROWS * nthreads else 1
        cdef Py_ssize_t chunk = min(n, Q_CHUNK)
        # per thread: its count of non-finite rows, two rotating output blocks of a
        # chunk, the int8 scratch of a chunk
        cdef Py_ssize_t share = (64 + 2 * chunk * self.widest * sizeof(float)
                                 + int8_scratch_bytes(chunk, self.widest_k) + 63) // 64 * 64
        buf = self._pool.take(team * share + 128)
        cdef char* scratch = <char*>cnp.PyArray_DATA(<cnp.ndarray>buf)
        scratch += (64 - <size_t>scratch % 64) % 64
        cdef Py_ssize_t nonfinite = 0
        cdef int t
        with nogil:
            if team > 1:
                self._predict_team(xp, n, op, scratch, share, team)
                for t in range(team):
                    nonfinite += (<Py_ssize_t*>(scratch + t * share))[0]
            else:
                nonfinite = self._predict_rows(xp, 0, n, op, scratch + 64, chunk, nthreads)
        self._pool.give(buf)
        if nonfinite:
            refuse_nonfinite(x)
        return out

    cdef void _predict_team(self, const float* x, Py_ssize_t n, float* out, char* scratch,
                            Py_ssize_t share, int nthreads) noexcept nogil:
        """Pieces of Q_PIECE rows (a multiple of the int8 tile's height) taken by the
        team's threads in turn from a shared counter (after the shares); each thread
        leaves its count of non-finite rows at the start of its share."""
        cdef int t
        cdef Py_ssize_t lo, hi
        cdef Py_ssize_t* next_piece = <Py_ssize_t*>(scratch + nthreads * share)
        cdef char* mine
        for t in range(nthreads):
            (<Py_ssize_t*>(scratch + t * share))[0] = 0
        next_piece[0] = 0
        with parallel(num_threads=nthreads):
            t = thread_num()
            mine = scratch + t * share
            lo = q_take(next_piece) * Q_PIECE
            while lo < n:
                hi = min(n, lo + Q_PIECE)
                (<Py_ssize_t*>mine)[0] += self._predict_rows(x, lo, hi, out, mine + 64,
                                                             min(n, Q_CHUNK), 1)
                lo = q_take(next_piece) * Q_PIECE

    cdef Py_ssize_t _predict_rows(self, const float* x, Py_ssize_t r0, Py_ssize_t r1,
                                  float* out, char* scratch, Py_ssize_t chunk,
                                  int nthreads) noexcept nogil:
        """Rows [r0, r1) through every stage, ``chunk`` rows at a time; ``nthreads``
        for each product's own column split. Returns the rows of x that an int8 first
        stage found NaN or infinite in."""
        cdef float* blocks = <float*>scratch
        cdef void* s8 = <void*>(scratch + 2 * chunk * self.widest * sizeof(float))
        cdef Py_ssize_t nonfinite = 0, bad
        cdef const float* inp
        cdef float* y
        cdef QS* q
        cdef int i
        cdef Py_ssize_t c0 = r0, m
        while c0 < r1:
            m = min(chunk, r1 - c0)
            inp = x + c0 * self.width_in
            for i in range(self.L):
                q = &self.st[i]
                if i == self.L - 1:
                    y = out + c0 * self.width_out
                else:
                    y = blocks + (i % 2) * chunk * self.widest
                if q.kind == K_INT8_DENSE:
                    bad = int8_rows(inp, m, q.k, q.n, q.w8, q.colsum, q.scales, q.bias, y,
                                    q.relu, nthreads, s8)
                    if i == 0:
                        nonfinite += bad
                else:
                    bf16_rows(inp, m, q.k, q.n, q.w16, q.bias, y, q.relu, nthreads)
                if q.act != LINEAR:
                    act_rows_forward(q.act, q.a, y, y, q.n, 0, m, NULL)
                inp = y
            c0 += m
        return nonfinite
