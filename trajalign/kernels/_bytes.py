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


def _big_endian(width: int, result):
    """The intrinsic ``f(data, p)``: bytes ``p .. p + width / 8 - 1`` of the contiguous
    1-D uint8 array ``data`` as a big-endian unsigned ``result`` (the caller checked
    that they lie inside ``data``)."""

    def typer(typingctx, arr, pos):
        ok = (
            isinstance(arr, types.Array)
            and arr.ndim == 1
            and arr.layout == "C"  # (a byte offset is an element offset only without strides)
            and arr.dtype == types.uint8
            and isinstance(pos, types.Integer)
        )
        if not ok:
            return None

        def codegen(context, builder, sig, args):
            data = make_array(sig.args[0])(context, builder, value=args[0]).data
            ity = ir.IntType(width)
            ptr = builder.bitcast(builder.gep(data, [args[1]]), ity.as_pointer())
            bswap = builder.module.declare_intrinsic("llvm.bswap", [ity])
            return builder.call(bswap, [builder.load(ptr, align=1)])

        return result(arr, pos), codegen

    typer.__name__ = f"be{width}"
    return intrinsic(typer)


#: ``be64(data, p)``: bytes ``p .. p + 7`` as a big-endian uint64
be64 = _big_endian(64, types.uint64)
#: ``be32(data, p)``: bytes ``p .. p + 3`` as a big-endian uint32
be32 = _big_endian(32, types.uint32)


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
