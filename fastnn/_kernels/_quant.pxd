# The low-precision products for other kernel modules (the compiled executor): raw
# pointers, no checks, the GIL released. ``xq`` and ``sx`` are per-call scratch of
# m * round_up(k, 4) bytes and m floats.
from libc.stdint cimport int8_t, int32_t, uint8_t, uint16_t

cdef void int8_rows(const float* x, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n,
                    const int8_t* packed, const int32_t* colsum, const float* scales,
                    const float* bias, float* y, bint relu, int nthreads, uint8_t* xq,
                    float* sx) noexcept nogil

cdef void bf16_rows(const float* x, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n,
                    const uint16_t* packed, const float* bias, float* y, bint relu,
                    int nthreads) noexcept nogil
