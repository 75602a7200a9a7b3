"""Int8 compute for the Linears that see every audio frame: ``com.microsoft.DynamicQuantizeMatMul``
on weights requantized to int8 per output channel when onnxruntime loads the graph.

Why: a Whisper encoder's Linears multiply 1500 rows per clip, and there onnxruntime 1.31's
MatMulNBits dequantizes to float32 and runs an fp32 GEMM (accuracy_level 4, int8 activations, is
slower still); its u8 x s8 QGEMM uses the CPU's int8 units (AVX512-VNNI, AMX). Measured on this
2-core Sapphire Rapids, 2 threads, [1500, 512] x [512, 2048]: fp32 MatMul 9.2 ms, 4-bit
MatMulNBits 9.0 ms (11.2 at accuracy_level 4), DynamicQuantizeMatMul 1.2 ms. faster-whisper's
int8 encoder runs such a GEMM too.

How, keeping the artifact small: the weight stays on disk as the recipe stored it (packed codes,
scales, zero points; or float for a Linear the recipe left alone). Standard ops dequantize it
as MatMulNBits does (:func:`.matmulnbits.dequantize_nodes`) and requantize it symmetric per
output channel, ``s = max|w| / 127``, ``q = round(w / s)``. Every input of that chain is a
constant, so onnxruntime's constant folding turns it into one int8 initializer and its scales
before the session prepacks them: memory holds int8 weights, the file keeps 4 bits.

What it costs: the products are no longer the fake-quant numbers bit for bit. The weights gain
an int8 rounding (at most half a step of 1/127 of the channel's largest weight, on top of the
recipe's own), and the activations are quantized to uint8 with one scale per tensor at run time
(DynamicQuantizeLinear). So this is an option (``asrquant export --compute int8``) measured by
the bench, never the default; the variant's manifest says which Linears run this way.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .matmulnbits import DOMAIN, PackedNBits, _const, dequantize_nodes, weight_name

INT8_MAX = 127
OP = "DynamicQuantizeMatMul"
OP_NOTE = ("DynamicQuantizeMatMul: weights requantized to int8 per output channel at load, "
           "activations to uint8 per tensor at run time")


def requantize_per_channel(w_kn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference of what the folded chain computes: int8 [K, N] and float32 scales [N] for a
    float32 weight [K, N] (``x @ w``). float32 throughout, as onnxruntime computes it."""
    w = np.asarray(w_kn, np.float32)
    scale = np.maximum(np.abs(w).max(axis=0), np.float32(np.finfo(np.float32).tiny)) / np.float32(INT8_MAX)
    q = np.clip(np.round(w / scale), -INT8_MAX, INT8_MAX).astype(np.int8)  # np.round: half to even, as ONNX Round
    return q, scale.astype(np.float32)


def _requantize_nodes(q: str, w_kn: str, w8: str, scale: str) -> list[onnx.NodeProto]:
    """``w_kn`` float [K, N] -> ``w8`` int8 [K, N], ``scale`` float [N] (see requantize_per_channel)."""
    return [
        _const(f"{q}/tiny", np.finfo(np.float32).tiny, np.float32),
        _const(f"{q}/qmax", float(INT8_MAX), np.float32), _const(f"{q}/qmin", -float(INT8_MAX), np.float32),
        helper.make_node("Abs", [w_kn], [f"{q}/abs"], name=f"/{q}/Abs"),
        helper.make_node("ReduceMax", [f"{q}/abs"], [f"{q}/amax"], name=f"/{q}/ReduceMax", axes=[0], keepdims=0),  # opset 17: axes attribute
        helper.make_node("Max", [f"{q}/amax", f"{q}/tiny"], [f"{q}/amax_pos"], name=f"/{q}/Max"),
        helper.make_node("Div", [f"{q}/amax_pos", f"{q}/qmax"], [scale], name=f"/{q}/Scale"),
        helper.make_node("Div", [w_kn, scale], [f"{q}/ratio"], name=f"/{q}/Div"),
        helper.make_node("Round", [f"{q}/ratio"], [f"{q}/rounded"], name=f"/{q}/Round"),
        helper.make_node("Clip", [f"{q}/rounded", f"{q}/qmin", f"{q}/qmax"], [f"{q}/clipped"], name=f"/{q}/Clip"),
        helper.make_node("Cast", [f"{q}/clipped"], [w8], name=f"/{q}/CastInt8", to=onnx.TensorProto.INT8),
    ]


def _packed_weight_nodes(linear: str, p: PackedNBits, w_kn: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """The packed weight's initializers and the nodes dequantizing it to float [K, N]."""
    inits = [numpy_helper.from_array(p.b, f"{linear}.qweight"), numpy_helper.from_array(p.scales, f"{linear}.scales")]
    if p.zero_points is not None:
        inits.append(numpy_helper.from_array(p.zero_points, f"{linear}.zero_points"))
    q = f"{linear}/dequantize"
    nodes = dequantize_nodes(q, [t.name for t in inits], p, lead=1, out=f"{q}/w_nk")
    nodes.append(helper.make_node("Transpose", [f"{q}/w_nk"], [w_kn], name=f"/{q}/Transpose", perm=[1, 0]))
    return nodes, inits


def replace_linears_int8(proto: onnx.ModelProto, packed: dict[str, PackedNBits]) -> list[str]:
    """Swap the MatMul of every Linear of this graph (``x @ <module>.weight_t``, see
    :class:`.onnx_whisper.LinearT`) for a DynamicQuantizeMatMul; quantized ones (in ``packed``)
    read their packed weight, float ones their float weight. Returns the Linears replaced."""
    g = proto.graph
    float_weights = {t.name for t in g.initializer}
    linear_of = {weight_name(n): n for n in packed}
    nodes, inits, found = [], [], []
    for node in g.node:
        w = node.input[1] if node.op_type == "MatMul" else None
        linear = linear_of.get(w) or (w[: -len(".weight_t")] if w and w.endswith(".weight_t") and w in float_weights else None)
        if linear is None:
            nodes.append(node)
            continue
        if linear in packed:
            w_kn = f"{linear}/dequantize/w_kn"
            dq, dq_inits = _packed_weight_nodes(linear, packed[linear], w_kn)
            nodes += dq
            inits += dq_inits
        else:
            w_kn = w
        w8, scale = f"{linear}/int8/weight", f"{linear}/int8/scale"
        nodes += _requantize_nodes(f"{linear}/int8", w_kn, w8, scale)
        nodes.append(helper.make_node(OP, [node.input[0], w8, scale], [node.output[0]], name=f"/{linear}/{OP}", domain=DOMAIN))
        found.append(linear)
    gone = {weight_name(n) for n in found if n in packed}
    del g.node[:]
    g.node.extend(nodes)
    still_used = {x for node in g.node for x in node.input}
    keep = [t for t in g.initializer if t.name not in gone or t.name in still_used]
    del g.initializer[:]
    g.initializer.extend(keep + inits)
    if found and not any(o.domain == DOMAIN for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    share_constants(proto)
    return found


def share_constants(proto: onnx.ModelProto) -> int:
    """Keep one Constant node per distinct value, the rest read it: each Linear's chain above makes
    the same dozen scalars and shapes, which otherwise take ~20 kB of graph per Linear. Returns
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
