"""Software prefetch for kernels whose loads are random rows (SMFM candidate selection, the
epoch's gather of shuffled rows).

``prefetch(a, i)`` asks the CPU to start loading the cache line of ``a[i]`` (``a`` 1-D, e.g. a
row view ``R[r]``) and returns at once; it never faults and changes no result.  A loop that knows
which random rows it will read a few iterations ahead issues these first, so the cache misses
overlap instead of queueing one after the other.  ``prefetch_row`` covers a whole row.
"""
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_LINE = 64  # bytes per cache line


@intrinsic
def prefetch(typingctx, arr, i):
    if not isinstance(arr, types.Array) or arr.ndim != 1 or not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        aryty, idxty = sig.args
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = context.cast(builder, args[1], idxty, types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [idx], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty)
        # read access, high temporal locality, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3),
                          ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, i), codegen


@njit(cache=True, inline="always")
def prefetch_row(A, r):
    """Prefetch every cache line of row r of the C-contiguous 2-D array A."""
    row = A[r]
    step = max(1, _LINE // A.itemsize)
    for c in range(0, row.shape[0], step):
        prefetch(row, c)


@njit(cache=True, inline="always")
def prefetch_nonzeros(indptr, indices, data, r):
    """Prefetch the first nonzero (its index and value) of CSR row r."""
    a = indptr[r]
    if a < indices.shape[0]:
        prefetch(indices, a)
        prefetch(data, a)
