"""Compiled kernels (Cython/OpenMP + BLAS). Only fastnn.backend.cpu_ops imports these."""
