"""Numba kernels of skfm: plain arrays in, plain arrays out; no sklearn, no Python objects.

CSR rows arrive as ``(indptr, indices, data)`` with int32 ``indptr``/``indices`` and sorted,
duplicate-free indices (the estimators canonicalise input before it gets here).  Kernels never
write into the arrays of X.
"""

#: LLVM fast-math flags of the compute kernels: reassociation lets reductions over the factor
#: dimension vectorise, contraction allows fused multiply-adds.  No "nnan"/"ninf": non-finite
#: values must stay detectable (umap dropped full fastmath after it hid NaN/Inf).
FASTMATH = {"reassoc", "contract"}
