# The low-precision products for other kernel modules (the compiled executor): raw
# pointers, no checks, the GIL released. ``scratch`` is per-call scratch of
# ``int8_scratch_bytes(m, k)`` bytes, aligned for floats.
from libc.stdint cimport int8_t, int32_t, uint8_t, uint16_t

cdef Py_ssize_t int8_rows(const float* x, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n,
                          const int8_t* packed, const int32_t* colsum, const float* scales,
                          const float* bias, float* y, bint relu, int nthreads,
                          void* scratch) noexcept nogil

cdef size_t int8_scratch_bytes(Py_ssize_t m, Py_ssize_t k) noexcept nogil

cdef void bf16_rows(const float* x, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n,
                    const uint16_t* packed, const float* bias, float* y, bint relu,
                    int nthreads) noexcept nogil
