"""The decoder's cross-attention keys as int8 codes: ``asrquant export --cross-keys int8``.

Why: every decoding step multiplies its queries by all 1500 keys of every layer. Once the
decoder's Linears are 4-bit, these products are the largest part of a step (the profile's
FusedMatMul in benchmarks/onnx-speed/README.md), and on a CPU with VNNI onnxruntime's int8 GEMM
does them about 4 x faster than float32 (``cross_attention.py``: 134 against 643 µs per layer).
The keys are also a quarter of the float32 cache a clip holds (whisper-base: 4.6 MB instead of
18.4). The values stay float32, for the reason the encoder's probabilities' product does
(:mod:`.int8_scores`): a diffuse row's probabilities sit far below one int8 step of its largest.

The rewrite, on the traced graphs of :mod:`asrquant.models.whisper.onnx_graphs`:

- the encoder's ``cross_k`` output [L, B, H, dh, A] becomes its codes, uint8, one scale and one
  offset per key channel over the window's 1500 frames of that layer and head:
  ``k ~ lo + s * code`` with ``lo = min k``, ``s = (max k - min k) / 255`` (a window's codes do not
  depend on the other windows of its batch). ``cross_k_scale`` [L, B, H, 1, dh] holds ``s``. Keys
  have outlier and offset channels (KIVI quantizes keys per channel): one scale per layer
  measured +0.9 pp WER and 2 more loops on the tuning clips, symmetric per channel +0.3 pp and 1
  more loop (benchmarks/onnx-speed/README.md). Each layer is quantized before the layers are
  stacked, so no float copy of all the keys lives beside its codes;
- in each decoder graph, input ``cross_k_i`` takes those codes (batch 1, broadcast over the
  beams, as the float keys were) and ``cross_k_scale_i`` [1, H, 1, dh] their scales. The scores
  ``MatMul(Mul(q, 1/sqrt(dh)), cross_k_i)`` become ``MatMulIntegerToFloat(q8, cross_k_i) * s_q``:
  the channel scales multiply the queries first (``sum_d q_d s_d code_d``, a product over dh
  values, not over the scores), then each query row (beam, head, token) is quantized with its own
  scale ``s_q``, symmetric, which multiplies the row's scores after the integer product.

The offsets are never stored: ``sum_d q_d lo_d``, like the codes' zero point 128 the integer
product subtracts (``-128 sum_d q8_d``), is one number per query row, the same for every frame, and
the scores only go through a Softmax, which no constant added to a row changes. So the
asymmetric codes cost the step nothing over symmetric ones.

The integer product reads the codes with zero point 128, exact on every CPU; on a CPU with VNNI
or AMX the runner hands them over as int8 (``code XOR 0x80``: the same integers less 128, zero
point 0; :mod:`asrquant.runtime.int8_weights`). Not the fake-quant numbers: an option measured by
the bench.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from .int8_matmul import ZERO
from .int8_scores import absmax_scale, shared_constants
from .matmulnbits import DOMAIN, const_node

P = "int8_cross"
KEYS, SCALE = "cross_k", "cross_k_scale"


def scale_input(layer: int) -> str:
    return f"{SCALE}_{layer}"


def _query_codes(x: str, p: str, codes: str) -> list[onnx.NodeProto]:
    """``codes`` = uint8 ``round(x / {p}/scale) + 128``, ``{p}/scale`` = max|x| / 127 over the last
    axis (kept as a dimension of 1). |x| / scale <= 127, so the codes lie in [1, 255] and need no
    clipping; Round is half to even, as numpy's rint."""
    return absmax_scale(x, p, P, axis=-1) + [
        helper.make_node("Div", [x, f"{p}/scale"], [f"{p}/ratio"], name=f"/{p}/Div"),
        helper.make_node("Round", [f"{p}/ratio"], [f"{p}/rounded"], name=f"/{p}/Round"),
        helper.make_node("Add", [f"{p}/rounded", f"{P}/offset"], [f"{p}/shifted"], name=f"/{p}/Add"),
        helper.make_node("Cast", [f"{p}/shifted"], [codes], name=f"/{p}/Cast", to=TensorProto.UINT8)]


def _key_codes(x: str, p: str) -> list[onnx.NodeProto]:
    """``{p}/codes`` = uint8 ``round((x - lo) / {p}/scale)`` with ``lo`` = min x and ``{p}/scale`` =
    (max x - min x) / 255 over the frames (the last axis, kept as a dimension of 1). 0 <= (x - lo) /
    scale <= 255: no clipping."""
    return [helper.make_node("ReduceMin", [x], [f"{p}/lo"], name=f"/{p}/ReduceMin", axes=[-1], keepdims=1),
            helper.make_node("ReduceMax", [x], [f"{p}/hi"], name=f"/{p}/ReduceMax", axes=[-1], keepdims=1),
            helper.make_node("Sub", [f"{p}/hi", f"{p}/lo"], [f"{p}/range"], name=f"/{p}/Range"),
            helper.make_node("Max", [f"{p}/range", f"{P}/tiny"], [f"{p}/range_pos"], name=f"/{p}/Max"),
            helper.make_node("Div", [f"{p}/range_pos", f"{P}/levels"], [f"{p}/scale"], name=f"/{p}/Scale"),
            helper.make_node("Sub", [x, f"{p}/lo"], [f"{p}/above"], name=f"/{p}/Sub"),
            helper.make_node("Div", [f"{p}/above", f"{p}/scale"], [f"{p}/ratio"], name=f"/{p}/Div"),
            helper.make_node("Round", [f"{p}/ratio"], [f"{p}/rounded"], name=f"/{p}/Round"),
            helper.make_node("Cast", [f"{p}/rounded"], [f"{p}/codes"], name=f"/{p}/Cast", to=TensorProto.UINT8)]


def _constants(gemm: bool) -> list[onnx.NodeProto]:
    """What the queries' codes and the integer product read (``gemm``), or the keys' codes."""
    if not gemm:
        return [c for c in shared_constants(P) if c.output[0] == f"{P}/tiny"] + [
            const_node(f"{P}/levels", 255.0, np.float32)]
    return shared_constants(P) + [const_node(f"{P}/offset", float(ZERO), np.float32)]


def quantize_encoder_keys(proto: onnx.ModelProto) -> None:
    """Rewrite, in place, the encoder graph's ``cross_k`` output as codes plus ``cross_k_scale``.
    The output is the traced ``Concat`` of the layers' keys (torch.stack): each layer's keys are
    quantized where they enter it."""
    g = proto.graph
    out = next((o for o in g.output if o.name == KEYS), None)
    stack = next((n for n in g.node if KEYS in n.output), None)
    if out is None or out.type.tensor_type.elem_type != TensorProto.FLOAT or stack is None \
            or stack.op_type != "Concat" or helper.get_attribute_value(stack.attribute[0]) != 0:
        raise ValueError(f"the encoder graph has no float {KEYS} output stacked by a Concat to quantize")
    layers = []
    for i, x in enumerate(stack.input):
        layers += _key_codes(x, f"{P}/layer{i}")
    scales = [f"{P}/layer{i}/scale" for i in range(len(stack.input))]
    nodes = _constants(gemm=False) + layers + [
        helper.make_node("Concat", [f"{P}/layer{i}/codes" for i in range(len(stack.input))], [KEYS],
                         name=f"/{P}/Codes", axis=0),
        helper.make_node("Concat", scales, [f"{P}/scales"], name=f"/{P}/Scales", axis=0),
        # [L, B, H, dh, 1] -> [L, B, H, 1, dh], the queries' layout (the same order in memory)
        const_node(f"{P}/scale_shape", [0, 0, 0, 1, -1], np.int64),
        helper.make_node("Reshape", [f"{P}/scales", f"{P}/scale_shape"], [SCALE], name=f"/{P}/ScaleShape")]
    kept = [n for n in g.node if n is not stack]
    del g.node[:]
    g.node.extend(kept + nodes)
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
            softmax = [n for n in g.node if mm.output[0] in n.input]
            if [n.op_type for n in softmax] != ["Softmax"] or \
                    helper.get_attribute_value(softmax[0].attribute[0]) not in (-1, 3):
                # the keys' offsets and the codes' zero point shift each row by a constant: only a
                # Softmax over the frames ignores that
                raise ValueError(f"{mm.name}: its scores feed {[n.op_type for n in softmax]}, not one Softmax "
                                 "over the frames")
            alpha = float(onnx.numpy_helper.to_array(helper.get_attribute_value(constants[mul.input[1]].attribute[0])))
            p = f"{P}/layer{i}/{len(before)}"
            before[id(mm)] = [
                helper.make_node("Mul", [mul.input[0], scale_input(i)], [f"{p}/qs"], name=f"/{p}/ChannelScales"),
                *_query_codes(f"{p}/qs", p, f"{p}/q8"),  # one scale per query row
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

