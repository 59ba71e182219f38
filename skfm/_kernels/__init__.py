"""Numba kernels of skfm: plain arrays in, plain arrays out; no sklearn, no Python objects.

CSR rows arrive as ``(indptr, indices, data)`` with int32 ``indptr``/``indices`` and sorted,
duplicate-free indices (the estimators canonicalise input before it gets here).  Kernels never
write into the arrays of X.
"""
