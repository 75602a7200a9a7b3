"""The decoder's cross-attention keys as int8 codes: ``asrquant export --cross-attention int8``.

Why: every decoding step multiplies its queries by all 1500 keys of every layer. Once the
decoder's Linears are 4-bit, these products are the largest part of a step (the profile's
FusedMatMul in benchmarks/onnx-speed/README.md), and on a CPU with VNNI onnxruntime's int8 GEMM
does them about 4 x faster than float32 (``cross_attention.py``: 134 against 643 µs per layer).
The keys are also a quarter of the float32 cache a clip holds (whisper-base: 4.6 MB instead of
18.4). The values stay float32, for the reason the encoder's probabilities' product does
(:mod:`.int8_scores`): a diffuse row's probabilities sit far below one int8 step of its largest.

The rewrite, on the traced graphs of :mod:`asrquant.models.whisper.onnx_graphs`:

- the encoder's ``cross_k`` output [L, B, H, dh, A] becomes its codes, uint8 + 128, with one scale
  per key channel: ``cross_k_scale`` [L, B, H, 1, dh] = max|k| / 127 over the window's 1500 frames
  of that layer, head and channel (a window's codes do not depend on the other windows of its
  batch). Keys have outlier channels (KIVI, "quantize keys per channel"); one scale per layer
  measured +0.9 pp WER and 2 more loops on the tuning clips (benchmarks/onnx-speed/README.md);
- in each decoder graph, input ``cross_k_i`` takes those codes (batch 1, broadcast over the
  beams, as the float keys were) and ``cross_k_scale_i`` [1, H, 1, dh] their scales. The scores
  ``MatMul(Mul(q, 1/sqrt(dh)), cross_k_i)`` become
  ``MatMulIntegerToFloat(q8, cross_k_i) * s_q``: the channel scales multiply the queries first
  (sum_d q_d s_d k8_d = q . k, so the codes' channel scales cost a product over dh values, not
  over the scores), then each query row (beam, head, token) is quantized with its own scale s_q,
  which multiplies the row's scores after the integer product.

Codes are uint8 + 128 with zero point 128, exact on every CPU; on a CPU with VNNI or AMX the
runner reads them as int8 (:mod:`asrquant.runtime.int8_weights`). Not the fake-quant numbers: an
option measured by the bench.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from .int8_matmul import ZERO
from .int8_scores import shared_constants
from .matmulnbits import DOMAIN, const_node

P = "int8_cross"
KEYS, SCALE = "cross_k", "cross_k_scale"
OP_NOTE = ("MatMulIntegerToFloat for the decoder's cross-attention scores: keys int8 per channel (uint8 + 128, "
           "computed by the encoder), queries int8 per row; values float32")


def scale_input(layer: int) -> str:
    return f"{SCALE}_{layer}"


def _codes(x: str, p: str, axis: int, codes: str) -> list[onnx.NodeProto]:
    """``codes`` = uint8 ``round(x / {p}/scale) + 128``, with ``{p}/scale`` = max|x| / 127 along
    ``axis`` (kept as a dimension of 1). |x| / scale <= 127, so the codes lie in [1, 255] and need
    no clipping; Round is half to even, as numpy's rint."""
    return [helper.make_node("Abs", [x], [f"{p}/abs"], name=f"/{p}/Abs"),
            helper.make_node("ReduceMax", [f"{p}/abs"], [f"{p}/amax"], name=f"/{p}/ReduceMax", axes=[axis],
                             keepdims=1),
            helper.make_node("Max", [f"{p}/amax", f"{P}/tiny"], [f"{p}/amax_pos"], name=f"/{p}/Max"),
            helper.make_node("Div", [f"{p}/amax_pos", f"{P}/qmax"], [f"{p}/scale"], name=f"/{p}/Scale"),
            helper.make_node("Div", [x, f"{p}/scale"], [f"{p}/ratio"], name=f"/{p}/Div"),
            helper.make_node("Round", [f"{p}/ratio"], [f"{p}/rounded"], name=f"/{p}/Round"),
            helper.make_node("Add", [f"{p}/rounded", f"{P}/offset"], [f"{p}/shifted"], name=f"/{p}/Add"),
            helper.make_node("Cast", [f"{p}/shifted"], [codes], name=f"/{p}/Cast", to=TensorProto.UINT8)]


def _constants(gemm: bool) -> list[onnx.NodeProto]:
    """What :func:`_codes` reads, and with ``gemm`` what the integer product reads too."""
    return [c for c in shared_constants(P) if gemm or c.output[0] in (f"{P}/qmax", f"{P}/tiny")] + [
        const_node(f"{P}/offset", float(ZERO), np.float32)]


def quantize_encoder_keys(proto: onnx.ModelProto) -> None:
    """Rewrite, in place, the encoder graph's ``cross_k`` output as codes plus ``cross_k_scale``."""
    g = proto.graph
    out = next((o for o in g.output if o.name == KEYS), None)
    if out is None or out.type.tensor_type.elem_type != TensorProto.FLOAT:
        raise ValueError(f"the encoder graph has no float {KEYS} output to quantize")
    k = f"{P}/keys"
    for n in g.node:
        n.output[:] = [k if o == KEYS else o for o in n.output]
    # one scale per (layer, window, head, channel): the maximum over the frames
    nodes = _constants(gemm=False) + _codes(k, P, 4, KEYS) + [
        # [L, B, H, dh, 1] -> [L, B, H, 1, dh], the queries' layout (the same order in memory)
        const_node(f"{P}/scale_shape", [0, 0, 0, 1, -1], np.int64),
        helper.make_node("Reshape", [f"{P}/scale", f"{P}/scale_shape"], [SCALE], name=f"/{P}/ScaleShape")]
    g.node.extend(nodes)
    out.type.tensor_type.elem_type = TensorProto.UINT8
    dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    g.output.append(helper.make_tensor_value_info(SCALE, TensorProto.FLOAT, dims[:3] + [1, dims[3]]))


def quantize_decoder_scores(proto: onnx.ModelProto, n_layer: int) -> int:
    """Rewrite, in place, a decoder graph (prefill or step) to take int8 cross-attention keys as
    above. Returns how many products changed (one per layer reading its keys); raises ValueError
    when a layer's keys feed something other than the traced ``MatMul(Mul(q, c), cross_k_i)``."""
    g = proto.graph
    producer = {o: n for n in g.node for o in n.output}
    constants = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    inputs = {i.name: i for i in g.input}
    before: dict[int, list[onnx.NodeProto]] = {}
    dropped: set[int] = set()
    for i in range(n_layer):
        name = f"{KEYS}_{i}"
        if name not in inputs:
            raise ValueError(f"the decoder graph has no input {name}")
        readers = [n for n in g.node if name in n.input]
        for mm in readers:
            mul = producer.get(mm.input[0])
            if not (mm.op_type == "MatMul" and mm.input[1] == name and mul is not None and mul.op_type == "Mul"
                    and mul.input[1] in constants and [n for n in g.node if mul.output[0] in n.input] == [mm]):
                raise ValueError(f"{mm.name}: not the traced MatMul(Mul(q, c), {name}) of an asrquant decoder")
            alpha = float(onnx.numpy_helper.to_array(helper.get_attribute_value(constants[mul.input[1]].attribute[0])))
            p = f"{P}/layer{i}/{len(before)}"
            before[id(mm)] = [
                helper.make_node("Mul", [mul.input[0], scale_input(i)], [f"{p}/qs"], name=f"/{p}/ChannelScales"),
                *_codes(f"{p}/qs", p, -1, f"{p}/q8"),  # one scale per query row
                const_node(f"{p}/alpha", alpha, np.float32),
                helper.make_node("MatMulIntegerToFloat", [f"{p}/q8", name, f"{p}/alpha", f"{P}/one", f"{P}/zero",
                                                          f"{P}/zero"], [f"{p}/scores"],
                                 name=f"/{p}/MatMulIntegerToFloat", domain=DOMAIN),
                helper.make_node("Mul", [f"{p}/scores", f"{p}/scale"], [mm.output[0]], name=f"/{p}/Scores")]
            dropped |= {id(mm), id(mul)}
        inputs[name].type.tensor_type.elem_type = TensorProto.UINT8
        heads, head_dim = (d.dim_value for d in inputs[name].type.tensor_type.shape.dim[1:3])
        g.input.append(helper.make_tensor_value_info(scale_input(i), TensorProto.FLOAT, [1, heads, 1, head_dim]))
    # a Mul's 1/sqrt(dh) constant read by nothing else goes with it
    used = {x for n in g.node if id(n) not in dropped for x in n.input}
    dropped |= {id(c) for name, c in constants.items() if name not in used}
    # each product's nodes take the place of the MatMul they replace
    kept = [x for n in g.node for x in before.get(id(n), []) + ([] if id(n) in dropped else [n])]
    nodes = _constants(gemm=True) + kept
    del g.node[:]
    g.node.extend(nodes)
    if not any(o.domain == DOMAIN for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return len(before)

