# The fused loss kernels shared with the compiled executor (float32 entry points).
from libc.stdint cimport int32_t, int64_t

ctypedef void* lptr

cpdef enum LossOp:
    SOFTMAX_CE
    SIGMOID_CE
    CROSSENTROPY
    BINARY_CE
    MSE
    MAE
    HUBER
    HINGE
    CATEGORICAL_HINGE

ctypedef struct Loss:
    int op
    Py_ssize_t k            # columns
    lptr dense              # (n, k) targets in the data's dtype, or NULL
    const int32_t* ids32    # (n,) class ids, or NULL
    const int64_t* ids64    # (n,) class ids, or NULL
    lptr probs              # (n, k) softmax/sigmoid output, or NULL
    lptr grad               # (n, k) gradient output, or NULL
    lptr weight             # (n,) sample weights, or NULL
    double scale            # grad_scale
    double on, off          # target t -> t * on + off (label smoothing)
    double eps              # clip epsilon, or Huber's delta

cdef object prepare_loss(Loss* L, int op, Py_ssize_t n, Py_ssize_t k, int typenum, targets,
                         sample_weight, double grad_scale, double label_smoothing, double eps)
cdef bint check_ids(const Loss* L, Py_ssize_t n) noexcept nogil
cdef double loss_rows(const Loss* L, const float* x, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
