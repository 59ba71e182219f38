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
#: Every kernel that is not inline="always" states its ``fastmath`` (FASTMATH or False): Numba
#: compiles a kernel that leaves it unset with the flags of its first caller and caches that
#: version for every later caller, so Adam's update of w0 differed by an ulp depending on
#: whether FM's (fastmath) or AFM's training loop compiled it first.  (Numba 0.68 inherits
#: ``error_model``, ``nrt`` and ``forceinline`` the same way; the error model changes only what
#: a division by zero does (exception or inf), and a review found no kernel dividing by a value
#: that can be zero for validated input, e.g. epsilon > 0.)
FASTMATH = {"reassoc", "contract"}
