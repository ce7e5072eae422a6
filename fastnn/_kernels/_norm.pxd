# Batch and layer normalisation loops shared with the compiled executor (float32).

cdef void bn_forward_cols(const float* x, const float* gamma, const float* beta, double eps,
                          float* y, float* xhat, float* mean, float* var, float* inv,
                          double* acc, Py_ssize_t n, Py_ssize_t d, Py_ssize_t j0,
                          Py_ssize_t j1) noexcept nogil
cdef void bn_backward_cols(const float* dy, const float* xhat, const float* gamma,
                           const float* inv, float* dx, float* dgamma, float* dbeta,
                           double* acc, Py_ssize_t n, Py_ssize_t d, Py_ssize_t j0,
                           Py_ssize_t j1) noexcept nogil
cdef void bn_fold(const float* gamma, const float* beta, const float* mean, const float* var,
                  double eps, float* scale, float* shift, Py_ssize_t d) noexcept nogil
cdef void bn_inverse_std(const float* var, double eps, float* inv, Py_ssize_t d) noexcept nogil
cdef void bn_inference_backward_cols(const float* dy, const float* x, const float* gamma,
                                     const float* mean, const float* inv, float* dx,
                                     float* dgamma, float* dbeta, double* acc, Py_ssize_t n,
                                     Py_ssize_t d, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil
cdef void affine_rows(const float* x, const float* scale, const float* shift, float* y,
                      Py_ssize_t d, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
cdef void ln_forward_rows(const float* x, const float* gamma, const float* beta, double eps,
                          float* y, float* xhat, float* inv, Py_ssize_t d, Py_ssize_t lo,
                          Py_ssize_t hi) noexcept nogil
cdef void ln_backward_rows(const float* dy, const float* xhat, const float* gamma,
                           const float* inv, float* dx, double* acc, Py_ssize_t d,
                           Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
cdef void bn_add_row(const float* xr, double* acc, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil
cdef void bn_stats_cols(const float* x, double* acc, float* mean, float* var, float* inv,
                        double eps, Py_ssize_t n, Py_ssize_t d, Py_ssize_t j0,
                        Py_ssize_t j1) noexcept nogil
cdef void bn_normalize_rows(const float* x, const float* mean, const float* inv,
                            const float* gamma, const float* beta, float* xhat, float* y,
                            Py_ssize_t d, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil
cdef void bn_grad_sums_rows(const float* dy, const float* xhat, double* acc, Py_ssize_t d,
                            Py_ssize_t r0, Py_ssize_t r1) noexcept nogil
cdef void bn_dx_rows(const float* dy, const float* xhat, const float* gamma, const float* inv,
                     const float* dgamma, const float* dbeta, float* dx, Py_ssize_t n,
                     Py_ssize_t d, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil
