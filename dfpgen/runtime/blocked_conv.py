"""One pass of a Conv2d on blocked tensors, with every conversion generated and threaded.

The operands come as `Blocked` activations and gradients, whose producers already measured max|.|,
and FP32 KCRS weights; each is quantized straight into the kernel's operand layout (or, for FP32
kernels, copied into it) by the data-movement kernels, in one pass over memory. FPROP's and BPROP's
results leave as `Blocked` tensors without a copy (their kernels write that layout), with max|.|
from the kernels' fused epilogue, or go straight into a channels-last array the caller gives (the
kernels write that layout too); WTGRAD's leaves as KCRS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from dfpgen.codegen.layout import aligned_zeros
from dfpgen.codegen.plan import ResultLayout
from dfpgen.codegen.views import regroup
from dfpgen.core.dfp import exponent_for_max
from dfpgen.core.stochastic import StreamKey
from dfpgen.errors import NumericsError, ShapeError
from dfpgen.passes import Pass
from dfpgen.runtime import emulated, pointwise, pool, quire
from dfpgen.runtime.blocked import Blocked, Measured, empty_blocked, fill, finite, is_dense, lanes, program, to_blocked


def _origin(operand, tensor, spec) -> tuple[np.ndarray, bool, float]:
    """The array a view pairs are taken from, whether it is blocked, and its max|.|."""
    shape = tensor.shape(spec)
    if isinstance(operand, Blocked):
        if operand.shape != shape:
            raise ShapeError(f"{tensor.name}: expected shape {shape} for layer {spec.name or '-'} "
                             f"({spec.describe()}), got {operand.shape}")
        return operand.data, True, operand.max_abs()
    if isinstance(operand, Measured):
        if operand.data.dtype != np.float32 or operand.data.shape != shape or not is_dense(operand.data):
            raise ShapeError(f"{tensor.name}: expected a dense (NCHW or channels-last) float32 array of shape "
                             f"{shape}, got {operand.data.dtype} {operand.data.shape} with strides "
                             f"{operand.data.strides}")
        return operand.data, False, operand.max_abs()
    a = np.asarray(operand)
    if a.dtype.kind != "f":
        raise ShapeError(f"{tensor.name}: expected a float array or a Blocked tensor, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.shape != shape:
        raise ShapeError(f"{tensor.name}: expected shape {shape} for layer {spec.name or '-'} "
                         f"({spec.describe()}), got {a.shape}")
    return a, False, float(np.max(np.abs(a))) if a.size else 0.0


def _unblocked(values: np.ndarray, blocked: bool, channels: int) -> np.ndarray:
    """Origin-shaped values as NCHW/KCRS, for the numpy layout functions."""
    if not blocked:
        return values
    N, G, H, W, L = values.shape
    return values.transpose(0, 1, 4, 2, 3).reshape(N, G * L, H, W)[:, :channels]


def _operand_buffer(op, conv_pass: Pass, role: str, shape: tuple, dtype, zero: int = 0) -> np.ndarray:
    """The operand layout's buffer, filled once with `zero` (a stored zero: the INT8 ISAs' src holds 128) and
    reused: each conversion rewrites the same elements, so margins and channel padding keep it."""
    buffers = op.operand_buffers
    key = (conv_pass, role)
    if key not in buffers or buffers[key].shape != shape or buffers[key].dtype != dtype:
        buffers[key] = aligned_zeros(shape, dtype)
        if zero:
            buffers[key].fill(zero)
    return buffers[key]


def _tensor(conv_pass: Pass, role: str):
    """The tensor (dfpgen/passes/base.py) that operand `role` ("src" or "vec") of a pass reads."""
    return conv_pass.src if role == "src" else conv_pass.vec


def _layout(plan, role: str) -> tuple[tuple, object]:
    """Operand `role`'s kernel layout: its shape and storage dtype."""
    return (plan.src_shape, plan.src_storage) if role == "src" else (plan.vec_shape, plan.vec_storage)


def _role_buffer(op, conv_pass: Pass, role: str) -> np.ndarray:
    """Operand `role`'s reused buffer in `conv_pass`'s kernel layout (_operand_buffer), filled once with its
    stored zero."""
    plan = op.kernel(conv_pass).plan
    offset = plan.isa.src_offset if role == "src" and plan.int_accumulate else 0
    return _operand_buffer(op, conv_pass, role, *_layout(plan, role), zero=offset)


def _dfp_rounding(op, kind, key: StreamKey | None) -> tuple[int, str, StreamKey | None]:
    """A DFP kind's bits, rounding and stochastic stream: a tensor without a key draws one from the op's generator."""
    rounding = op.numerics.rounding_of(kind)
    if rounding == "stochastic" and key is None:
        key = StreamKey.drawn(op.rng)
    return op.numerics.bits_of(kind), rounding, key


@dataclass(frozen=True, eq=False)
class Converted:
    """An operand already in one pass's kernel layout, with its exponent (0 for FP32): what `convert_ahead`
    returns, and what run_blocked then takes in the operand's place."""

    op: object
    conv_pass: Pass
    role: str
    data: np.ndarray
    exp: int


@dataclass(frozen=True, eq=False)
class Produced:
    """A tensor its producer wrote straight into operand layouts: the `Converted` operands by (pass, role),
    the FP32 Blocked tensor where some layout still needs it (else None), and its stochastic stream."""

    converted: dict
    fp32: Blocked | None
    key: StreamKey | None


def convert_ahead(op, conv_pass: Pass, role: str, operand, key: StreamKey | None):
    """Operand `role` of `conv_pass` converted now rather than when the pass runs, as a `Converted` (or the
    operand as it is, for a pass whose quire reads values, not a layout). The training runtimes convert
    BPROP's weights this way right before FPROP's conversion reads the same weights, which then come from
    cache; backward differentiates the forward pass that ran, whose weights these are. The layout is the op's
    operand buffer, which the op's next conversion of this operand overwrites."""
    if emulated.result_format(op.numerics, conv_pass) is not None:
        return operand
    data, exp = convert_operand(op, conv_pass, role, operand, key)
    return Converted(op, conv_pass, role, data, exp)


def _pack_layout(op, conv_pass: Pass, role: str, shape: tuple) -> tuple | None:
    """Where each element of a blocked tensor of `shape` goes in operand `role`'s INT16 layout, as the tables
    (items, pixels, lane stride) of a pointwise pack, or None: the operand is no DFP INT16 one, or its
    conversion is not one position per element of that form (skipped or repeated elements, corrections,
    channel padding)."""
    plan = op.kernel(conv_pass).plan
    tensor, (dst_shape, storage) = _tensor(conv_pass, role), _layout(plan, role)
    if (op.spec.groups != 1 or not plan.int_accumulate or np.dtype(storage) != np.int16 or plan.corrected
            or not op.numerics.is_dfp(tensor.kind) or op.numerics.format_of(tensor.kind) is not None
            or tensor.shape(op.spec)[1] != shape[1] * shape[4]):
        return None
    # Everything the views read of the plan (dfpgen/codegen/views.py), not the layer's name: equal layers share.
    facts = (conv_pass, role, shape, plan.spec.shape_key(), dst_shape, plan.layout, plan.corrected)
    if facts not in _PACK_LAYOUTS:
        if len(_PACK_LAYOUTS) >= PACK_LAYOUTS_KEPT:
            _PACK_LAYOUTS.clear()
        _PACK_LAYOUTS[facts] = _probe_pack_layout(conv_pass, role, plan, shape)
    return _PACK_LAYOUTS[facts]


_PACK_LAYOUTS: dict = {}
PACK_LAYOUTS_KEPT = 512
PROBE_IMAGES = 2   # images the layout probe moves numbers for: every view treats images alike, which two confirm


def _probe_pack_layout(conv_pass: Pass, role: str, plan, shape: tuple) -> tuple | None:
    """_pack_layout's tables, found by moving element numbers through the conversion's own views, so a
    producer writes exactly what the conversion would. The views treat images alike (each operand layout
    is image-major), so the probe moves the first PROBE_IMAGES images and requires image n to land as image
    0 moved by n images' worth of the layout."""
    views = conv_pass.src_views if role == "src" else conv_pass.vec_views
    dst_shape = _layout(plan, role)[0]
    N, CB, H, W, L = shape
    if views is None or np.prod(dst_shape) >= 2**31 or dst_shape[0] != N:
        return None
    images = min(N, PROBE_IMAGES)
    numbers = np.arange(images * CB * H * W * L, dtype=np.int32).reshape((images,) + shape[1:])
    landed = np.full((images,) + tuple(dst_shape[1:]), -1, np.int32).reshape(-1)
    for source, target in views(numbers, True, landed.reshape((images,) + tuple(dst_shape[1:])), plan):
        target[...] = source
    where = np.flatnonzero(landed >= 0).astype(np.int32)
    position = np.full(numbers.size, -1, np.int32)
    position[landed[where]] = where
    if where.size != numbers.size or (position < 0).any():
        return None   # elements skipped or moved twice
    position = position.reshape(images * CB, H * W, L)
    stride = int(position[0, 0, 1] - position[0, 0, 0]) if L > 1 else 1
    items, pixels = position[:, 0, 0], position[0, :, 0] - position[0, 0, 0]
    image = int(np.prod(dst_shape[1:]))   # int32 sums: the probe's positions are below 2**31
    if stride not in pointwise.PACK_STRIDES or not np.array_equal(
            position, items[:, None, None] + pixels[None, :, None] + stride * np.arange(L)) \
            or not np.array_equal(items.reshape(images, CB), items[:CB] + image * np.arange(images)[:, None]):
        return None
    items = (items[:CB].astype(np.int64) + image * np.arange(N, dtype=np.int64)[:, None]).reshape(-1)
    items.flags.writeable = pixels.flags.writeable = False
    return items, pixels, stride


def convert_in_producer(op, wanted: tuple, shape: tuple, key: StreamKey | None, exp_hint: int | None,
                        produce, keep_fp32: bool = False) -> tuple[dict, Blocked | None]:
    """Convert a tensor its producer is about to compute straight into the operand layouts `wanted` ((pass,
    role) pairs of `op`) with no FP32 copy in between: `produce(packs, quantizer, out)` runs the producer's
    pointwise kernel of blocked `shape`, packing into each PackTarget and storing FP32 into `out` when it
    is not None, and returns max|result|. The exponent is `exp_hint` (the tensor's last one) and checked
    against the max the kernel measured; on a miss the kernel runs again on the right one. Returns the
    `Converted` operands by (pass, role) and, when some layout cannot be packed (or no exponent hint or
    a scale numpy must apply, or `keep_fp32`), the FP32 result as a Blocked tensor, which the rest convert
    as usual."""
    layouts = {target: _pack_layout(op, *target, shape) for target in wanted}
    packable = [target for target, found in layouts.items() if found is not None]
    tensors = [_tensor(*target) for target in wanted]
    kind, channels = {t.kind for t in tensors}, tensors[0].shape(op.spec)[1]
    if len(kind) != 1 or exp_hint is None or not packable:
        packable = []
    else:
        bits, rounding, key = _dfp_rounding(op, kind.pop(), key)
    out = None if len(packable) == len(wanted) and not keep_fp32 else pool.empty(shape, np.float32)
    start = time.perf_counter()
    if not packable:
        maxabs = produce((), None, out)
        return {}, Blocked(out, channels, maxabs)
    buffers = [_role_buffer(op, *target) for target in packable]
    targets = [pointwise.PackTarget(buffer.reshape(-1), *layouts[target]) for target, buffer in zip(packable, buffers)]
    exp, converted = exp_hint, {}
    for _ in range(2):   # the guess, then (on a miss) the exponent the first run measured, which holds
        if not -126 <= -exp <= 127:   # 2**-exp is no normal float32: produce FP32 and convert in numpy
            break
        maxabs = finite(produce(tuple(targets), pointwise.Quantizer(exp, bits, rounding, key), out))
        if exponent_for_max(maxabs, bits) == exp:
            converted = {target: Converted(op, *target, buffer, exp) for target, buffer in zip(packable, buffers)}
            break
        exp = exponent_for_max(maxabs, bits)
    if not converted:
        out = pool.empty(shape, np.float32) if out is None else out
        maxabs = produce((), None, out)
    op.timings["produced"] = op.timings.get("produced", 0.0) + time.perf_counter() - start
    return converted, None if out is None else Blocked(out, channels, maxabs)


def convert_operand(op, conv_pass: Pass, role: str, operand, key: StreamKey | None) -> tuple[np.ndarray, int]:
    """Operand `role` ("src" or "vec") of a pass in the kernel's layout, and its exponent (0 for FP32); a
    `Converted` operand (of this op, pass and role) as it is."""
    if isinstance(operand, Converted):
        if operand.op is not op or operand.conv_pass is not conv_pass or operand.role != role:
            raise ShapeError(f"{conv_pass.name} {role}: got an operand converted for {operand.conv_pass.name} "
                             f"{operand.role}" + ("" if operand.op is op else " of another layer"))
        return operand.data, operand.exp
    kernel = op.kernel(conv_pass)
    plan = kernel.plan
    tensor = _tensor(conv_pass, role)
    views = conv_pass.src_views if role == "src" else conv_pass.vec_views
    to_layout = conv_pass.to_src if role == "src" else conv_pass.to_vec
    origin, blocked, maxabs = _origin(operand, tensor, op.spec)
    offset = plan.isa.src_offset if role == "src" and plan.int_accumulate else 0
    dst = _role_buffer(op, conv_pass, role)
    pairs = program(op.move_programs, (conv_pass, role, blocked), lambda: views(origin, blocked, dst, plan),
                    origin, dst) if views is not None and op.spec.groups == 1 else None
    channels = tensor.shape(op.spec)[1]

    def layout(values):
        return to_layout(_unblocked(values, blocked, channels), plan)

    threads, start, kind = op.threads, time.perf_counter(), tensor.kind
    if op.numerics.format_of(kind) is not None:
        # An emulated format (dfpgen.runtime.emulated): the FP32 kernel's operand is the tensor rounded to
        # it in numpy, blocked along this pass's reduction axis for MX, then laid out.
        values = emulated.operand_values(op.numerics, conv_pass, tensor, _unblocked(origin, blocked, channels))
        fill(dst, None, values, lambda v: to_layout(v, plan), threads)
        op.timings["quantize"] = op.timings.get("quantize", 0.0) + time.perf_counter() - start
        return dst, 0
    if not op.numerics.is_dfp(kind):
        fill(dst, pairs, origin, layout, threads)
        op.timings["layout"] = op.timings.get("layout", 0.0) + time.perf_counter() - start
        return dst, 0
    # A DFP tensor: mantissas for a DFP kernel; for an FP32 kernel (the other operand is FP32) the values
    # they represent, so every pass computes on the tensor the forward pass quantized.
    bits, rounding, key = _dfp_rounding(op, kind, key)
    hinted = isinstance(operand, Measured) and operand.hint
    if hinted and pairs is not None and not pairs.reads_all(origin.size):
        maxabs, hinted = operand.measure(), False   # moves that skip elements cannot check a hint
    exp = exponent_for_max(maxabs, bits)
    values = not plan.int_accumulate
    moved = fill(dst, pairs, origin, layout, threads, exp=exp, bits=bits, rounding=rounding, key=key, dequantize=values,
                 offset=offset)
    if hinted:   # every element moved: `moved` is max|.|, and only its exponent must agree with the guess's
        if exponent_for_max(moved, bits) != exp:
            exp = exponent_for_max(moved, bits)
            fill(dst, pairs, origin, layout, threads, exp=exp, bits=bits, rounding=rounding, key=key, dequantize=values,
                 offset=offset)
        operand.maxabs, operand.hint = moved, False
    if role == "vec" and conv_pass.vec_finish is not None and plan.int_accumulate:
        conv_pass.vec_finish(dst, plan)
    op.timings["quantize"] = op.timings.get("quantize", 0.0) + time.perf_counter() - start
    return dst, 0 if values else exp


def operand_values(op, conv_pass: Pass, role: str, operand, key: StreamKey | None) -> np.ndarray:
    """Operand `role` of a pass as the NCHW or KCRS float32 values an FP32 kernel reads from convert_operand:
    rounded to its kind's emulated format, quantized to DFP and read back (the same numpy rounding, `fill`
    numbering stochastic draws alike), or as it is (an FP32 kind)."""
    tensor = _tensor(conv_pass, role)
    origin, blocked, maxabs = _origin(operand, tensor, op.spec)
    channels, kind, start = tensor.shape(op.spec)[1], tensor.kind, time.perf_counter()
    values = _unblocked(origin, blocked, channels)
    if op.numerics.format_of(kind) is not None:
        values = emulated.operand_values(op.numerics, conv_pass, tensor, values)
    elif op.numerics.is_dfp(kind):
        bits, rounding, key = _dfp_rounding(op, kind, key)
        if isinstance(operand, Measured) and operand.hint:   # a guessed max|.| would set another exponent
            maxabs = operand.measure()
        values = np.empty(tensor.shape(op.spec), np.float32)
        fill(values, None, origin, lambda v: _unblocked(v, blocked, channels), op.threads,
             exp=exponent_for_max(maxabs, bits), bits=bits, rounding=rounding, key=key, dequantize=True)
    op.timings["quantize"] = op.timings.get("quantize", 0.0) + time.perf_counter() - start
    return values


def _run_quire(op, conv_pass: Pass, fmt, a, b, keys: tuple, out: np.ndarray | None):
    """run_blocked for a pass that accumulates in `fmt`'s quire (dfpgen.runtime.quire): the exact result of
    the values an FP32 kernel would read, rounded once, as a Blocked tensor or into `out`."""
    src = operand_values(op, conv_pass, "src", a, keys[0])
    vec = operand_values(op, conv_pass, "vec", b, keys[1])
    start = time.perf_counter()
    result = quire.run(conv_pass, op.spec, src, vec, fmt)
    phase = f"kernel {conv_pass.name}"
    op.timings[phase] = op.timings.get(phase, 0.0) + time.perf_counter() - start
    if out is None:
        return to_blocked(result, op.threads)
    out[...] = result
    return out


def run_blocked(op, conv_pass: Pass, a, b, keys: tuple = (None, None), out: np.ndarray | None = None):
    """Run one pass of `op` on (src, vec) operands given as Blocked tensors or float arrays; returns a
    Blocked result (FPROP, BPROP) or a KCRS float32 array (WTGRAD). With `out` (a dense, writeable float32
    array of the result's NCHW or KCRS shape, in any layout, e.g. a channels-last tensor's memory) the
    result goes there and `out` is returned: FPROP and BPROP kernels write a channels-last `out` whose channels
    are whole blocks of lanes in place (ResultLayout.CHANNELS_LAST), other layouts through a conversion.
    `keys`: the stochastic-rounding streams of the two operands (pass the same key wherever one tensor feeds
    two passes)."""
    if op.spec.groups != 1:
        raise NumericsError(f"layer {op.spec.name or '-'}: blocked execution runs ungrouped layers; "
                            f"groups={op.spec.groups} goes through Conv2d.run")
    plan = op.kernel(conv_pass).plan
    shape = conv_pass.result.shape(op.spec)
    blocked_result = conv_pass.result_views is True
    found = None if out is None else _result_array(out, shape)
    fmt = emulated.result_format(op.numerics, conv_pass)
    if fmt is not None:   # a posit's quire: the exact result, rounded once
        if found is None and not blocked_result:
            found = _result_array(None, shape)
        return _run_quire(op, conv_pass, fmt, a, b, keys, found)
    # vec first: FPROP's weights are then read right after convert_ahead read them for BPROP, from cache.
    vec, e_vec = convert_operand(op, conv_pass, "vec", b, keys[1])
    src, e_src = convert_operand(op, conv_pass, "src", a, keys[0])
    in_place = blocked_result and found is not None and _channels_last(found) and shape[1] % plan.lanes == 0
    kernel = op.kernel(conv_pass, ResultLayout.CHANNELS_LAST if in_place else ResultLayout.BLOCKED)
    if in_place:
        dst = found.transpose(0, 2, 3, 1)
    elif blocked_result:
        dst = pool.empty(plan.dst_shape, np.float32)
    else:
        dst = _operand_buffer(op, conv_pass, "dst", plan.dst_shape, np.float32)
    scale = np.ldexp(1.0, e_src + e_vec)
    normal = 2.0**-126 <= scale < 2.0**127
    start = time.perf_counter()
    maxabs = kernel.run(src, vec, dst, float(scale) if normal else 1.0, op.threads)
    op.timings[f"kernel {conv_pass.name}"] = op.timings.get(f"kernel {conv_pass.name}", 0.0) + \
        time.perf_counter() - start
    if not normal:   # 2**(e_src+e_vec) is no normal float32: scale in float64 after the kernel, exactly
        dst[...] = (dst.astype(np.float64) * scale).astype(np.float32)
        maxabs = float(np.float32(maxabs * scale))
    if in_place:
        return found
    start = time.perf_counter()
    if blocked_result:
        result = dst if plan.lanes == lanes() else _relaned(dst, shape, op.threads)
        result = Blocked(result, shape[1], maxabs)
        if found is not None:
            result = result.unblock_into(found, op.threads)
    else:
        found = _result_array(None, shape) if found is None else found
        views = program(op.move_programs, (conv_pass, "dst"), lambda: conv_pass.result_views(dst, found), dst,
                        found) if conv_pass.result_views else None
        fill(found, views, dst, lambda values: conv_pass.from_dst(values, plan), op.threads)
        result = found
    op.timings["layout"] = op.timings.get("layout", 0.0) + time.perf_counter() - start
    return result


def _channels_last(a: np.ndarray) -> bool:
    """Whether an NCHW-shaped array's memory is [N][H][W][C] (a channels-last tensor's)."""
    return a.transpose(0, 2, 3, 1).flags.c_contiguous


def _result_array(given: np.ndarray | None, shape: tuple) -> np.ndarray:
    """`given` checked as a dense, writeable float32 array of `shape`, or a new C-contiguous one (reused memory:
    dfpgen/runtime/pool.py)."""
    if given is None:
        return pool.empty(shape, np.float32)
    if not isinstance(given, np.ndarray) or given.dtype != np.float32 or given.shape != shape \
            or not is_dense(given) or not given.flags.writeable:
        got = f"{given.dtype} {given.shape}" if isinstance(given, np.ndarray) else type(given).__name__
        raise ShapeError(f"out=: expected a dense, writeable float32 array of shape {shape}, got {got}")
    return given


def _relaned(out: np.ndarray, shape: tuple, threads: int) -> np.ndarray:
    """A kernel result of other lanes than the runtime's (a forced narrower ISA) in the runtime's layout
    (lane counts are powers of two, so one divides the other and the views always exist)."""
    data = empty_blocked(shape, zero=True)
    pairs = regroup(out.transpose(0, 1, 4, 2, 3), data.transpose(0, 1, 4, 2, 3), 1)
    fill(data, pairs, out, None, threads)
    return data
