# Elementwise kernels shared with other kernel modules (the compiled executor):
# float32 entry points of the same loops the ``def`` functions run.
from libc.stdint cimport uint64_t

# Activation codes are ``Act`` in _elementwise.pyx: other modules read them from the
# Python-level ``_elementwise.Act`` by name (the executor when it builds a Segment).

cdef void act_forward(int op, const float* x, float* y, Py_ssize_t lo, Py_ssize_t hi,
                      float a) noexcept nogil
cdef void act_backward(int op, const float* dy, const float* x, const float* y, float* dx,
                       Py_ssize_t lo, Py_ssize_t hi, float a) noexcept nogil
cdef bint act_needs_x(int op) noexcept nogil
cdef void softmax_rows(const float* x, float* y, Py_ssize_t d, Py_ssize_t lo,
                       Py_ssize_t hi) noexcept nogil
cdef void softmax_backward_rows(const float* dy, const float* y, float* dx, Py_ssize_t d,
                                Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
cdef void log_softmax_rows(const float* x, float* y, Py_ssize_t d, Py_ssize_t lo,
                           Py_ssize_t hi) noexcept nogil
cdef void log_softmax_backward_rows(const float* dy, const float* y, float* dx, Py_ssize_t d,
                                    Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
cdef void multiply(const float* a, const float* b, float* out, Py_ssize_t lo,
                   Py_ssize_t hi) noexcept nogil
cdef void ema_update(float* average, const float* value, double momentum, Py_ssize_t lo,
                     Py_ssize_t hi) noexcept nogil
cdef void dropout_fill(float* out, uint64_t seed, double rate, float keep, Py_ssize_t lo,
                       Py_ssize_t hi) noexcept nogil
cdef void dropout_apply(const float* x, float* mask, float* y, uint64_t seed, double rate,
                        float keep, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
cdef void column_sums(const float* x, double* acc, float* out, Py_ssize_t rows, Py_ssize_t d,
                      Py_ssize_t j0, Py_ssize_t j1) noexcept nogil
cdef void prelu_rows(const float* x, const float* alpha, float* y, Py_ssize_t d,
                     Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
cdef void prelu_backward_rows(const float* dy, const float* x, const float* alpha, float* dx,
                              double* dalpha_acc, Py_ssize_t d, Py_ssize_t lo,
                              Py_ssize_t hi) noexcept nogil
cdef void maxout_rows(const float* z, float* y, int* argmax, Py_ssize_t units, int pieces,
                      Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
cdef void maxout_backward_rows(const float* dy, const int* argmax, float* dz, Py_ssize_t units,
                               int pieces, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil

ctypedef struct GeneralRelu:
    float max_value
    bint has_max
    float negative_slope
    float threshold

cdef void general_relu_forward(const float* x, float* y, Py_ssize_t lo, Py_ssize_t hi,
                               const GeneralRelu* p) noexcept nogil
cdef void general_relu_backward(const float* dy, const float* x, float* dx, Py_ssize_t lo,
                                Py_ssize_t hi, const GeneralRelu* p) noexcept nogil
