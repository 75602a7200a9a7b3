"""Int8 compute for the Linears that see every audio frame: integer GEMMs (``MatMulIntegerToFloat``) on
weights stored int8 per output channel and activations quantized per row at run time.

Why: a Whisper encoder's Linears multiply 1500 rows per clip, and there onnxruntime 1.31's
MatMulNBits dequantizes to float32 and runs an fp32 GEMM (accuracy_level 4, int8 activations, is
slower still); its u8 x s8 QGEMM uses the CPU's int8 units (AVX512-VNNI, AMX). Measured on this
2-core Sapphire Rapids, 2 threads, [1500, 512] x [512, 2048]: fp32 MatMul 9.2 ms, 4-bit
MatMulNBits 9.0 ms (11.2 at accuracy_level 4), the per-row int8 chain below 2.1 ms
(DynamicQuantizeMatMul, one activation scale per tensor, 1.2 ms). faster-whisper's int8 encoder
runs such GEMMs too.

Activations: one scale per row (per audio frame), symmetric, ``a = round(x / s_row) + 128`` as
uint8 with zero point 128. One scale per tensor (DynamicQuantizeMatMul) was faster but doubled
the error: on whisper-base's encoder Linears over real clips the mean relative output error was
0.024 per tensor, 0.013 per row, 0.008 from the int8 weights alone, and the per-tensor variant
lost 1.7 pp WER on the 225-clip eval set against float compute.

Weights: stored int8 [K, N] with a float32 scale per output channel, ``s = max|w| / 127``. A
Linear the recipe quantized to 8 bits per channel, symmetric, keeps its own codes (exact); any
other (4-bit groups, or float) is requantized from its dequantized weight at export
(:func:`requantize_per_channel`): a second rounding of at most half a step of 1/127 of the
channel's largest weight, and an encoder file twice as large as at 4 bits. (Requantizing at
load instead, with constant-folded standard ops, kept the file at 4 bits but onnxruntime held
every intermediate of the fold: peak memory 990 MB instead of 400 for whisper-base.)

So this is an option (``asrquant export --compute int8``) measured by the bench, never the
default: its products are not the fake-quant numbers. The variant's manifest says which Linears
run this way.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..quant.qtensor import QuantizedWeight
from .matmulnbits import DOMAIN, _const

INT8_MAX = 127
ZERO = 128  # activations are symmetric int8 shifted into uint8, the operand the QGEMM kernels take
OP = "MatMulIntegerToFloat"
OP_NOTE = "MatMulIntegerToFloat: weights int8 per output channel, activations int8 per row at run time"


def requantize_per_channel(w_kn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 [K, N] and float32 scales [N] for a float32 weight [K, N] (``x @ w``)."""
    w = np.asarray(w_kn, np.float32)
    scale = np.maximum(np.abs(w).max(axis=0), np.float32(np.finfo(np.float32).tiny)) / np.float32(INT8_MAX)
    q = np.clip(np.round(w / scale), -INT8_MAX, INT8_MAX).astype(np.int8)
    return q, scale.astype(np.float32)


def int8_weight(w_kn: np.ndarray, qw: QuantizedWeight | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """(int8 [K, N], scales [N], exact): the recipe's own codes when it stored 8 bits per channel,
    symmetric (exact), else the dequantized weight ``w_kn`` requantized."""
    s = qw.scheme if qw is not None else None
    if s is not None and s.format == "int" and s.bits == 8 and s.symmetric and qw.group_len == qw.shape[1]:
        codes = qw.codes.cpu().numpy().astype(np.int16) - (1 << (s.bits - 1))  # [N, K], zero 128
        return np.ascontiguousarray(codes.T.astype(np.int8)), qw.scales.cpu().numpy().astype(np.float32)[:, 0], True
    q, scale = requantize_per_channel(w_kn)
    return q, scale, False


def _int8_matmul_nodes(q: str, x: str, w8: str, w_scale: str, out: str) -> list[onnx.NodeProto]:
    """``out = (round(x / s_row) @ w8) * w_scale * s_row`` with ``s_row = max|x_row| / 127``.

    QuantizeLinear (scale 1, zero point 128) rounds, shifts and saturates in one pass, and
    MatMulIntegerToFloat applies the weight scales in the GEMM's output pass: half the time of
    Round, Add, Cast, MatMulInteger, Cast, Mul as separate ops (2.1 vs 3.8 ms for [1500, 512] x
    [512, 2048], 2 threads)."""
    return [
        _const(f"{q}/tiny", np.finfo(np.float32).tiny, np.float32), _const(f"{q}/qmax", float(INT8_MAX), np.float32),
        _const(f"{q}/one", 1.0, np.float32), _const(f"{q}/zero", ZERO, np.uint8),
        helper.make_node("Abs", [x], [f"{q}/abs"], name=f"/{q}/Abs"),
        helper.make_node("ReduceMax", [f"{q}/abs"], [f"{q}/amax"], name=f"/{q}/ReduceMax", axes=[-1], keepdims=1),
        helper.make_node("Max", [f"{q}/amax", f"{q}/tiny"], [f"{q}/amax_pos"], name=f"/{q}/Max"),
        helper.make_node("Div", [f"{q}/amax_pos", f"{q}/qmax"], [f"{q}/row_scale"], name=f"/{q}/RowScale"),
        helper.make_node("Div", [x, f"{q}/row_scale"], [f"{q}/ratio"], name=f"/{q}/Div"),
        helper.make_node("QuantizeLinear", [f"{q}/ratio", f"{q}/one", f"{q}/zero"], [f"{q}/x_u8"], name=f"/{q}/Quantize"),
        helper.make_node("MatMulIntegerToFloat", [f"{q}/x_u8", w8, f"{q}/one", w_scale, f"{q}/zero"], [f"{q}/col_scaled"],
                         name=f"/{q}/MatMulIntegerToFloat", domain=DOMAIN),
        helper.make_node("Mul", [f"{q}/col_scaled", f"{q}/row_scale"], [out], name=f"/{q}/MulRow"),
    ]


def replace_linears_int8(proto: onnx.ModelProto, qweights: dict[str, QuantizedWeight]) -> dict[str, bool]:
    """Swap the MatMul of every Linear of this graph (``x @ <module>.weight_t``, see
    :class:`.onnx_whisper.LinearT`, whose initializer holds the float or fake-quant weight) for
    the int8 chain. ``qweights``: the recipe's quantized weights by Linear. Returns Linear ->
    whether its int8 weight is the recipe's own codes (exact)."""
    g = proto.graph
    inits = {t.name: t for t in g.initializer}
    nodes, new_inits, found = [], [], {}
    for node in g.node:
        w = node.input[1] if node.op_type == "MatMul" else None
        if not (w and w.endswith(".weight_t") and w in inits):
            nodes.append(node)
            continue
        linear = w[: -len(".weight_t")]
        w8, w_scale, exact = int8_weight(numpy_helper.to_array(inits[w]), qweights.get(linear))
        new_inits += [numpy_helper.from_array(w8, f"{linear}.weight_int8"), numpy_helper.from_array(w_scale, f"{linear}.scale_int8")]
        nodes += _int8_matmul_nodes(f"{linear}/int8", node.input[0], f"{linear}.weight_int8", f"{linear}.scale_int8",
                                    node.output[0])
        found[linear] = exact
    del g.node[:]
    g.node.extend(nodes)
    still_used = {x for node in g.node for x in node.input}
    keep = [t for t in g.initializer if t.name in still_used]
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    share_constants(proto)
    if found and not any(o.domain == DOMAIN for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return found


def share_constants(proto: onnx.ModelProto) -> int:
    """Keep one Constant node per distinct value, the rest read it: each Linear's chain above makes
    the same few scalars. Returns
    the number of nodes removed."""
    g = proto.graph
    first: dict[bytes, str] = {}
    alias: dict[str, str] = {}
    keep = []
    for node in g.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            t = node.attribute[0].t
            key = bytes([t.data_type]) + repr(list(t.dims)).encode() + numpy_helper.to_array(t).tobytes()
            if key in first:
                alias[node.output[0]] = first[key]
                continue
            first[key] = node.output[0]
        keep.append(node)
    for node in keep:
        for i, x in enumerate(node.input):
            if x in alias:
                node.input[i] = alias[x]
    del g.node[:]
    g.node.extend(keep)
    return len(alias)
