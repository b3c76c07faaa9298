"""A view of an array that carries no reference count, for the hot loops of serial kernels.

An array inside a Numba kernel holds a pointer to its memory-info block, and every copy
of the array variable (an argument handed to an inlined helper, a slice) increments and
decrements that block's reference count: two atomic operations, which also stop LLVM
from vectorising or reordering the loop around them. A ``prange`` loop's body does not
pay them, because Numba hands it its arrays with no memory-info block (NULL, for which
the increments compile to nothing). :func:`borrow` gives a serial kernel the same: a view
of the array, same data, shape and strides, with NULL in place of the memory-info block
and the parent object.

The view does not keep the memory alive. Borrow only arrays the kernel received as
arguments (its caller holds them for the call), never an array the kernel allocated
itself (Numba frees a variable after its last use, which may come before the view's:
seen as garbage values in a test), and never return or store the view.

Measured: the XTC decoder (``kernels.xtc.decode_frame``, which hands the file's bytes to
inlined bit readers) decodes a 47681-atom frame in 1.27 ms on one thread with the array
itself and in 0.23 ms with a borrowed view (0.43 ms before, inside a ``prange`` loop);
mindist's pairs measured one by one (``kernels.mindist._measure_pairs``) run 1.9x faster.
"""

from numba.core import cgutils, types
from numba.extending import intrinsic
from numba.np.arrayobj import make_array

__all__ = ["borrow"]


@intrinsic
def borrow(typingctx, arr):
    """``borrow(a)``: a view of array ``a`` with no reference count (see the module)."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, sig, args):
        src = make_array(arr)(context, builder, value=args[0])
        out = make_array(arr)(context, builder)
        out.data = src.data
        out.shape = src.shape
        out.strides = src.strides
        out.itemsize = src.itemsize
        out.nitems = src.nitems
        out.meminfo = cgutils.get_null_value(out.meminfo.type)
        out.parent = cgutils.get_null_value(out.parent.type)
        # the value is new: Numba's reference counting then treats it as any other, and
        # increments of a NULL block are no-ops
        return out._getvalue()

    return arr(arr), codegen
