"""Big-endian loads and bit casts as LLVM instructions, for the XTC decoder.

Written in Numba's language, an 8-byte big-endian load is eight byte reads, casts and
shifts: Numba types every one of those operations at every place the reader is inlined
(measured: about 0.4 s of compilation per inlined copy), and LLVM then merges them back
into one load and a byte swap. These intrinsics emit that load and swap directly, so
they cost nothing to type and compile to the same machine code.

None of them checks bounds: the caller checks that the bytes lie inside the array.
"""

from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic
from numba.np.arrayobj import make_array

__all__ = ["be32", "be64", "bits_to_f32", "bswap64"]


def _load_be(context, builder, arr_type, arr, pos, width):
    """The ``width``-bit big-endian integer at byte ``pos`` of the 1-D uint8 array."""
    data = make_array(arr_type)(context, builder, value=arr).data
    ptr = builder.gep(data, [pos])
    ity = ir.IntType(width)
    raw = builder.load(builder.bitcast(ptr, ity.as_pointer()), align=1)
    bswap = builder.module.declare_intrinsic("llvm.bswap", [ity])
    return builder.call(bswap, [raw])


def _check(arr, pos):
    ok = (
        isinstance(arr, types.Array)
        and arr.ndim == 1
        and arr.layout == "C"  # (a byte offset is an element offset only without strides)
        and arr.dtype == types.uint8
        and isinstance(pos, types.Integer)
    )
    return ok


@intrinsic
def be64(typingctx, arr, pos):
    """``be64(data, p)``: bytes ``p .. p + 7`` of the uint8 array ``data`` as a
    big-endian uint64 (the caller checked ``p + 8 <= data.size``)."""
    if not _check(arr, pos):
        return None

    def codegen(context, builder, sig, args):
        return _load_be(context, builder, sig.args[0], args[0], args[1], 64)

    return types.uint64(arr, pos), codegen


@intrinsic
def be32(typingctx, arr, pos):
    """``be32(data, p)``: bytes ``p .. p + 3`` as a big-endian uint32 (checked by the
    caller)."""
    if not _check(arr, pos):
        return None

    def codegen(context, builder, sig, args):
        return _load_be(context, builder, sig.args[0], args[0], args[1], 32)

    return types.uint32(arr, pos), codegen


@intrinsic
def bits_to_f32(typingctx, u):
    """``bits_to_f32(u)``: the float32 whose IEEE bits are the uint32 ``u``."""
    if u != types.uint32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(u), codegen


@intrinsic
def bswap64(typingctx, x):
    """``bswap64(x)``: the uint64 ``x`` with its bytes in reverse order."""
    if x != types.uint64:
        return None

    def codegen(context, builder, sig, args):
        fn = builder.module.declare_intrinsic("llvm.bswap", [ir.IntType(64)])
        return builder.call(fn, [args[0]])

    return types.uint64(x), codegen
