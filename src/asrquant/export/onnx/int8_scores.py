"""The encoder's attention scores (``q k^T``) as integer GEMMs: ``asrquant export --attention int8``.

Why: on a CPU with VNNI the encoder's float32 attention products are the largest part of its time
once its Linears run int8 (benchmarks/onnx-speed/README.md), and onnxruntime's u8 x s8 GEMM there
is several times faster than its float32 one. The scores are the product whose inputs have the
simplest range: queries and keys come out of LayerNorm'd Linears. The probabilities' product
(``softmax @ v``) stays float32: the probabilities of a diffuse row sit far below one int8 step
of its largest one.

The rewrite, on the traced encoder graph (the unfused attention of
:mod:`asrquant.models.whisper.onnx_graphs`: ``Softmax(MatMul(Mul(q_chunk, 1/sqrt(dh)), k^T))``):

- each layer's keys (the key projection's output, before its heads are split) are quantized once
  with one scale for the tensor, ``s_k = max|k| / 127``, and then split and transposed as the
  float keys were (the same Reshape and Transpose on the codes);
- each chunk of queries with one scale for the chunk, ``s_q = max|q| / 127``;
- ``MatMulIntegerToFloat(q8, k8)`` with the scalar ``s_q * s_k / sqrt(dh)`` gives the scores.

One scale per tensor keeps the GEMM's output pass the only one over the scores (a scale per key
costs a Mul over [heads, rows, 1500] per chunk, and was no more exact: benchmarks/onnx-speed,
``int8_scores.py``). Codes are uint8 + 128 with zero point 128, as for the Linears
(:mod:`.int8_matmul`): exact on every CPU; where the CPU has VNNI or AMX the runner turns the
keys' quantization to int8 at load (:mod:`asrquant.runtime.int8_weights`). Not the fake-quant
numbers: an option measured by the bench.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .int8_matmul import INT8_MAX, ZERO
from .matmulnbits import DOMAIN, const_node

P = "int8_scores"
OP_NOTE = ("MatMulIntegerToFloat for the encoder's attention scores: queries int8 per chunk, keys int8 per layer "
           "(uint8 + 128), probabilities' product float32")


def absmax_scale(x: str, p: str, shared: str = P, axis: int | None = None) -> list[onnx.NodeProto]:
    """``{p}/scale = max(max|x|, tiny) / 127`` from the constants of :func:`shared_constants` under
    ``shared``: a scalar, or with ``axis`` one per slice along it (kept as a dimension of 1)."""
    reduce = {"keepdims": 0} if axis is None else {"axes": [axis], "keepdims": 1}
    return [helper.make_node("Abs", [x], [f"{p}/abs"], name=f"/{p}/Abs"),
            helper.make_node("ReduceMax", [f"{p}/abs"], [f"{p}/amax"], name=f"/{p}/ReduceMax", **reduce),
            helper.make_node("Max", [f"{p}/amax", f"{shared}/tiny"], [f"{p}/amax_pos"], name=f"/{p}/Max"),
            helper.make_node("Div", [f"{p}/amax_pos", f"{shared}/qmax"], [f"{p}/scale"], name=f"/{p}/Scale")]


def shared_constants(prefix: str) -> list[onnx.NodeProto]:
    """The constants every integer product of a rewrite reads: its codes' zero point (uint8 128),
    a unit scale, the codes' largest magnitude and the smallest positive float32."""
    return [const_node(f"{prefix}/zero", ZERO, np.uint8), const_node(f"{prefix}/one", 1.0, np.float32),
            const_node(f"{prefix}/qmax", float(INT8_MAX), np.float32),
            const_node(f"{prefix}/tiny", np.finfo(np.float32).tiny, np.float32)]


def quantize_scores(proto: onnx.ModelProto) -> int:
    """Rewrite, in place, every attention-score product of the encoder graph ``proto`` as above.
    Returns how many products changed; raises ValueError when the graph has Softmax nodes but
    not the traced pattern around them (another graph: nothing is changed)."""
    g = proto.graph
    producer = {o: n for n in g.node for o in n.output}
    constants = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    before: dict[int, list[onnx.NodeProto]] = {}  # id(Softmax) -> the nodes that now compute its input
    dropped: set[int] = set()
    keys: dict[str, tuple[str, str]] = {}  # k^T -> (its codes, their scale)
    plan = []
    for softmax in (n for n in g.node if n.op_type == "Softmax"):
        mm = producer.get(softmax.input[0])
        mul = producer.get(mm.input[0]) if mm is not None and mm.op_type == "MatMul" else None
        tr = producer.get(mm.input[1]) if mul is not None else None
        rs = producer.get(tr.input[0]) if tr is not None and tr.op_type == "Transpose" else None
        if not (mul is not None and mul.op_type == "Mul" and mul.input[1] in constants and rs is not None
                and rs.op_type == "Reshape"):
            raise ValueError(f"{softmax.name}: not the traced Softmax(MatMul(Mul(q, c), Transpose(Reshape(k)))) "
                             "of an asrquant encoder")
        plan.append((softmax, mm, mul, tr, rs))
    for i, (softmax, mm, mul, tr, rs) in enumerate(plan):
        alpha = float(numpy_helper.to_array(helper.get_attribute_value(constants[mul.input[1]].attribute[0])))
        nodes = []
        if mm.input[1] not in keys:  # once per layer: the chunks of a layer share its keys
            k, p = rs.input[0], f"int8_scores/keys{len(keys)}"
            nodes += absmax_scale(k, p) + [
                helper.make_node("QuantizeLinear", [k, f"{p}/scale", "int8_scores/zero"], [f"{p}/k8"],
                                 name=f"/{p}/Quantize"),
                helper.make_node("Reshape", [f"{p}/k8", rs.input[1]], [f"{p}/k8_heads"], name=f"/{p}/Reshape"),
                helper.make_node("Transpose", [f"{p}/k8_heads"], [f"{p}/k8_t"], name=f"/{p}/Transpose",
                                 perm=list(helper.get_attribute_value(tr.attribute[0])))]
            keys[mm.input[1]] = (f"{p}/k8_t", f"{p}/scale")
        k8, k_scale = keys[mm.input[1]]
        q, p = mul.input[0], f"int8_scores/chunk{i}"
        nodes += absmax_scale(q, p) + [
            helper.make_node("QuantizeLinear", [q, f"{p}/scale", "int8_scores/zero"], [f"{p}/q8"],
                             name=f"/{p}/Quantize"),
            const_node(f"{p}/alpha", alpha, np.float32),
            helper.make_node("Mul", [f"{p}/scale", k_scale], [f"{p}/qk_scale"], name=f"/{p}/QKScale"),
            helper.make_node("Mul", [f"{p}/qk_scale", f"{p}/alpha"], [f"{p}/out_scale"], name=f"/{p}/OutScale"),
            helper.make_node("MatMulIntegerToFloat", [f"{p}/q8", k8, f"{p}/out_scale", "int8_scores/one",
                                                      "int8_scores/zero", "int8_scores/zero"],
                             [softmax.input[0]], name=f"/{p}/MatMulIntegerToFloat", domain=DOMAIN)]
        before.setdefault(id(softmax), []).extend(nodes)
        dropped |= {id(mm), id(mul)}
    if not plan:
        return 0
    # The float keys' Reshape and Transpose and the 1/sqrt(dh) constants fed only the products
    # replaced: no longer needed.
    readers: dict[str, set[int]] = {}
    for n in g.node:
        for x in n.input:
            readers.setdefault(x, set()).add(id(n))
    for _, _, mul, tr, rs in plan:
        for n in (tr, rs, constants[mul.input[1]]):
            if readers.get(n.output[0], set()) <= dropped:
                dropped.add(id(n))
    shared = shared_constants(P)
    nodes = shared + [x for n in g.node if id(n) not in dropped for x in before.get(id(n), []) + [n]]
    del g.node[:]
    g.node.extend(nodes)
    if not any(o.domain == DOMAIN for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return len(plan)
