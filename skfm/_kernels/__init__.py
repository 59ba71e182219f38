"""Numba kernels of skfm: plain arrays in, plain arrays out; no sklearn, no Python objects.

CSR rows arrive as ``(indptr, indices, data)`` with int64 ``indptr``, int32 ``indices`` and sorted,
duplicate-free indices (the estimators canonicalise input before it gets here).  Kernels never
write into the arrays of X.

A kernel that calls another passes flags and offsets as ``np.bool_(...)`` / ``np.int64(...)``
values, never as bare ``True``/``0`` literals: Numba compiles a separate copy of the callee (and
of everything it calls) for each literal value, which doubled the cold compile time of NFM.
"""

#: LLVM fast-math flags of the compute kernels: reassociation lets reductions over the factor
#: dimension vectorise, contraction allows fused multiply-adds.  No "nnan"/"ninf": non-finite
#: values must stay detectable (umap dropped full fastmath after it hid NaN/Inf).
FASTMATH = {"reassoc", "contract"}
