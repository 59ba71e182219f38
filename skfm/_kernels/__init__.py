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


def _install_cache_locator():
    """Key the Numba cache of every kernel here on the sources of all of them.

    Numba checks a cached function against its own file only, but a kernel compiles in what it
    calls from other files (the optimizer updates, the CSR helpers, and in the minibatch
    skeleton every model's hooks): an edit to one of those would leave stale machine code in the
    caller's cache.  This locator gives every kernel of this package one source stamp, a digest
    of all the kernel files, and puts its prefix in the cache file names, so a changed kernel
    file recompiles every kernel and an upgraded skfm never reads (nor unpickles) the index of
    another version.  Where the cache lives is unchanged (NUMBA_CACHE_DIR, else __pycache__,
    else the user-wide directory)."""
    import hashlib
    import os

    from numba.core import caching

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    here = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            with open(os.path.join(here, name), "rb") as fh:
                digest.update(name.encode() + b"\0" + fh.read() + b"\0")
    stamp = digest.hexdigest()

    class KernelsCacheLocator(caching._CacheLocator):
        def __init__(self, base, py_file):
            self._base = base
            self._py_file = py_file  # Numba's warning that a function cannot be cached names it

        def ensure_cache_path(self):
            self._base.ensure_cache_path()

        def get_cache_path(self):
            return self._base.get_cache_path()

        def get_source_stamp(self):
            return stamp

        def get_disambiguator(self):
            return f"{self._base.get_disambiguator()}-{stamp[:12]}"

        @classmethod
        def from_function(cls, py_func, py_file):
            if os.path.dirname(os.path.abspath(py_file)) != here:
                return None
            for other in impl._locator_classes:
                if other is not cls:
                    base = other.from_function(py_func, py_file)
                    if base is not None:
                        return cls(base, py_file)
            return None

    if not any(getattr(c, "__name__", "") == "KernelsCacheLocator"
               and c.__module__ == __name__ for c in impl._locator_classes):
        impl._locator_classes.insert(0, KernelsCacheLocator)


_install_cache_locator()
