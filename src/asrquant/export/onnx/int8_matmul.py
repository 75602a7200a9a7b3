"""Int8 compute for the Linears that see every audio frame: integer GEMMs (``MatMulIntegerToFloat``) on
weights stored int8 per output channel and activations quantized per row at run time.

Why: a Whisper encoder's Linears multiply 1500 rows per clip, and there onnxruntime 1.31's
MatMulNBits dequantizes to float32 and runs an fp32 GEMM (accuracy_level 4, int8 activations, is
slower still); its integer QGEMM uses the CPU's int8 units (AVX512-VNNI, AMX), several times
faster than either where the CPU has them. faster-whisper's int8 encoder runs such GEMMs too. On
CPUs without VNNI (AVX2) no int8 kernel is faster than float32. Timings per op and per CPU:
benchmarks/onnx-export/README.md, "Figures formerly in code comments".

Activations: one scale per row (per audio frame), symmetric, ``a = round(x / s_row) + 128`` as
uint8 with zero point 128. One scale per tensor (DynamicQuantizeMatMul) was faster but doubled
the error: on whisper-base's encoder Linears over real clips the mean relative output error was
0.024 per tensor, 0.013 per row, 0.008 from the int8 weights alone, and the per-tensor variant
lost WER against float compute (benchmarks/onnx-export/README.md).

Weights: int8 codes [K, N] with a float32 scale per output channel, ``s = max|w| / 127``, held
as uint8 with zero point 128 (``code + 128``; the ``.weight_int8`` tensors): onnxruntime's u8 x s8
GEMM on CPUs without VNNI (AVX2, AVX-512 before Cascade Lake) sums pairs of u8 x s8 products in
16 bits (VPMADDUBSW) and saturates: with activations around 128 a pair of large weights of one sign
overflows. On an AVX2-only CPU with one loud channel, u8 x s8 was far off and u8 x u8 exact and as
fast (the u8 x u8 kernel widens to 16 bits before multiplying; figures:
benchmarks/onnx-export/README.md). The weights come from one of
three sources (the manifest's "stored" says which):
- the recipe's own codes, when it stored 8 bits per channel, symmetric: exact;
- the recipe's 4- or 8-bit grouped codes, stored as they are in an ``encoder_weights`` graph that
  the runner runs once at load: DequantizeLinear (blocked), the channel scale, QuantizeLinear,
  Transpose, all standard ops. The encoder graph takes the results as inputs. The file stays at
  the recipe's bits (smaller than with int8 stored), at the price of onnxruntime not prepacking
  weights that arrive as inputs: a slightly slower encoder call and load
  (benchmarks/onnx-export/encoder-time.py; figures in benchmarks/onnx-export/README.md);
- a float weight (or codes of other bits): requantized at export and stored int8.
A grouped weight's int8 copy is a second rounding of at most half a step of 1/127 of its channel's
largest weight. Why not keep the expansion inside the encoder graph: onnxruntime constant-folds
it when it loads the graph and held every intermediate of the fold (more than twice the peak
memory for whisper-base; benchmarks/onnx-export/README.md).

So this is an option (``asrquant export --compute int8``) measured by the bench, never the
default: its products are not the fake-quant numbers. The variant's manifest says which Linears
run this way.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from ...quant import int8_chain
from ...quant.int8_chain import INT8_MAX
from ...quant.qtensor import QuantizedWeight
from .matmulnbits import DOMAIN, PackedNBits, const_node

ZERO = 128  # activations and weights are symmetric int8 codes shifted into uint8 (see above: no saturation)
OP = "MatMulIntegerToFloat"
OP_NOTE = ("MatMulIntegerToFloat: weights int8 per output channel, activations int8 per row at run time "
           "(both held as uint8 + 128)")
# Where a Linear's int8 weight comes from (the manifest's "stored").
OWN = "its own codes"
AT_LOAD = "its codes, expanded to int8 per channel at load by the encoder_weights graph"
AT_EXPORT = "requantized to int8 per channel at export"
LOAD_BITS = (4, 8)  # the codes DequantizeLinear reads (uint4, uint8)
WEIGHTS_OPSET, WEIGHTS_IR = 21, 10  # blocked DequantizeLinear and 4-bit tensors need opset 21


def requantize_per_channel(w_kn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 [K, N] and float32 scales [N] for a float32 weight [K, N] (``x @ w``): the rule of
    :func:`asrquant.quant.int8_chain.requantize_per_channel`, which the emulations share."""
    q, scale = int8_chain.requantize_per_channel(torch.from_numpy(np.asarray(w_kn, np.float32)))
    return q.numpy(), scale.numpy()


def own_int8(qw: QuantizedWeight | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(int8 [K, N], scales [N]): the recipe's own codes when it stored 8 bits per channel,
    symmetric; else None."""
    if not int8_chain.keeps_own_codes(qw):
        return None
    s = qw.scheme
    codes = qw.codes.cpu().numpy().astype(np.int16) - (1 << (s.bits - 1))  # [N, K], zero 128
    return np.ascontiguousarray(codes.T.astype(np.int8)), qw.scales.cpu().numpy().astype(np.float32)[:, 0]


def as_uint8(q: np.ndarray) -> np.ndarray:
    """int8 codes -> the uint8 (+128) the GEMM reads."""
    return (q.astype(np.int16) + ZERO).astype(np.uint8)


def _int8_matmul_nodes(q: str, x: str, w8: str, w_scale: str, out: str,
                       smooth: np.ndarray | None = None) -> list[onnx.NodeProto]:
    """``out = (round(x / s_row) @ w8) * w_scale * s_row`` with ``s_row = max|x_row| / 127``;
    with ``smooth`` [K] (see :mod:`.smoothing`), ``x / smooth`` in place of ``x``.

    QuantizeLinear (scale 1, zero point 128) rounds, shifts and saturates in one pass, and
    MatMulIntegerToFloat applies the weight scales in the GEMM's output pass: about half the time
    of Round, Add, Cast, MatMulInteger, Cast, Mul as separate ops (benchmarks/onnx-export/README.md)."""
    pre = []
    if smooth is not None:
        pre = [const_node(f"{q}/inv_smooth", (1.0 / smooth).astype(np.float32), np.float32),
               helper.make_node("Mul", [x, f"{q}/inv_smooth"], [f"{q}/smoothed"], name=f"/{q}/Smooth")]
        x = f"{q}/smoothed"
    return pre + [
        const_node(f"{q}/tiny", np.finfo(np.float32).tiny, np.float32),
        const_node(f"{q}/qmax", float(INT8_MAX), np.float32),
        const_node(f"{q}/one", 1.0, np.float32), const_node(f"{q}/zero", ZERO, np.uint8),
        helper.make_node("Abs", [x], [f"{q}/abs"], name=f"/{q}/Abs"),
        helper.make_node("ReduceMax", [f"{q}/abs"], [f"{q}/amax"], name=f"/{q}/ReduceMax", axes=[-1], keepdims=1),
        helper.make_node("Max", [f"{q}/amax", f"{q}/tiny"], [f"{q}/amax_pos"], name=f"/{q}/Max"),
        helper.make_node("Div", [f"{q}/amax_pos", f"{q}/qmax"], [f"{q}/row_scale"], name=f"/{q}/RowScale"),
        helper.make_node("Div", [x, f"{q}/row_scale"], [f"{q}/ratio"], name=f"/{q}/Div"),
        helper.make_node("QuantizeLinear", [f"{q}/ratio", f"{q}/one", f"{q}/zero"], [f"{q}/x_u8"],
                         name=f"/{q}/Quantize"),
        helper.make_node("MatMulIntegerToFloat", [f"{q}/x_u8", w8, f"{q}/one", w_scale, f"{q}/zero", f"{q}/zero"],
                         [f"{q}/col_scaled"],
                         name=f"/{q}/MatMulIntegerToFloat", domain=DOMAIN),
        helper.make_node("Mul", [f"{q}/col_scaled", f"{q}/row_scale"], [out], name=f"/{q}/MulRow"),
    ]


def _linear_of(node: onnx.NodeProto, inits) -> str | None:
    """The Linear whose product ``node`` is (``x @ <module>.weight_t``, see :class:`.graphs.LinearT`), or None."""
    w = node.input[1] if node.op_type == "MatMul" else None
    return w[: -len(".weight_t")] if w and w.endswith(".weight_t") and w in inits else None


def graph_linears(proto: onnx.ModelProto) -> list[str]:
    """The Linears of this graph, in graph order: those :func:`replace_linears_int8` would swap."""
    inits = {t.name for t in proto.graph.initializer}
    return [n for n in (_linear_of(node, inits) for node in proto.graph.node) if n is not None]


def replace_linears_int8(proto: onnx.ModelProto, qweights: dict[str, QuantizedWeight],
                         packed: dict[str, PackedNBits] | None = None, smooth: dict[str, np.ndarray] | None = None,
                         skip: frozenset[str] | set[str] = frozenset(),
                         ) -> tuple[dict[str, str], dict[str, PackedNBits]]:
    """Swap the MatMul of every Linear of this graph (``x @ <module>.weight_t``, see
    :class:`.graphs.LinearT`, whose initializer holds the float or fake-quant weight) for
    the int8 chain. ``qweights``: the recipe's quantized weights by Linear; ``packed``: the same
    packed as MatMulNBits, whose 4- and 8-bit codes are kept and expanded at load; ``smooth``:
    per-input-channel smoothing by Linear (:mod:`.smoothing`), not applied to a Linear whose
    own int8 codes are used (they would no longer be its own); ``skip``: Linears left as they are
    (their MatMul and weight; :mod:`.int8_choice`).

    Returns (Linear -> where its int8 weight comes from: OWN, AT_LOAD or AT_EXPORT; the packed
    weights to expand at load, for :func:`weights_graph`). Weights expanded at load become inputs
    of this graph, ``<linear>.weight_int8`` [K, N] and ``<linear>.scale_int8`` [N]."""
    g = proto.graph
    inits = {t.name: t for t in g.initializer}
    nodes, new_inits, found, at_load = [], [], {}, {}
    for node in g.node:
        linear = _linear_of(node, inits)
        if linear is None or linear in skip:
            nodes.append(node)
            continue
        w = node.input[1]
        w8, w_scale = f"{linear}.weight_int8", f"{linear}.scale_int8"
        own, p = own_int8(qweights.get(linear)), (packed or {}).get(linear)
        sm = (smooth or {}).get(linear) if own is None else None
        if own is None and p is not None and p.bits in LOAD_BITS:
            g.input.extend([helper.make_tensor_value_info(w8, TensorProto.UINT8, [p.k, p.n]),
                            helper.make_tensor_value_info(w_scale, TensorProto.FLOAT, [p.n])])
            found[linear], at_load[linear] = AT_LOAD, p
        else:
            if own is not None:
                (q, scale), found[linear] = own, OWN
            else:
                w_kn = numpy_helper.to_array(inits[w]).astype(np.float32)
                q, scale = requantize_per_channel(w_kn if sm is None else w_kn * sm[:, None])
                found[linear] = AT_EXPORT
            new_inits += [numpy_helper.from_array(as_uint8(q), w8), numpy_helper.from_array(scale, w_scale)]
        nodes += _int8_matmul_nodes(f"{linear}/int8", node.input[0], w8, w_scale, node.output[0], sm)
    del g.node[:]
    g.node.extend(nodes)
    still_used = {x for node in g.node for x in node.input}
    keep = [t for t in g.initializer if t.name in still_used]
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    share_constants(proto)
    if found and not any(o.domain == DOMAIN for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return found, at_load


def weights_graph(at_load: dict[str, PackedNBits], smooth: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """The ``encoder_weights`` graph: no inputs; for every Linear, from its packed codes, the
    int8 weight [K, N] (as uint8 + 128) and channel scales [N] the encoder graph takes (the same rule as
    :func:`requantize_per_channel`, applied to the exact dequantized weight, times its smoothing
    per input channel where ``smooth`` has one). Standard ops only, so any onnxruntime user can
    run it; the runner does, once, without graph optimizations."""
    nodes, inits, outputs = [], [], []
    for linear, p in at_load.items():
        q, w = f"{linear}/expand", f"{linear}/expand/w"
        inits += _packed_tensors(linear, p)
        nodes.append(helper.make_node("DequantizeLinear",
                                      [f"{linear}.codes", f"{linear}.scales", f"{linear}.zero_points"],
                                      [w], name=f"/{q}/Dequantize", axis=1, block_size=p.block_size))
        if p.b.shape[1] * p.block_size != p.k:  # the last block was padded
            nodes += [const_node(f"{q}/start", [0], np.int64), const_node(f"{q}/end", [p.k], np.int64),
                      const_node(f"{q}/axis", [1], np.int64),
                      helper.make_node("Slice", [w, f"{q}/start", f"{q}/end", f"{q}/axis"], [f"{w}_k"],
                                       name=f"/{q}/Slice")]
            w = f"{w}_k"
        if (smooth or {}).get(linear) is not None:  # [N, K] * [K]: the weight's rows of the smoothed inputs
            nodes += [const_node(f"{q}/smooth", smooth[linear].astype(np.float32), np.float32),
                      helper.make_node("Mul", [w, f"{q}/smooth"], [f"{w}_s"], name=f"/{q}/Smooth")]
            w = f"{w}_s"
        nodes += [
            const_node(f"{q}/axes", [1], np.int64), const_node(f"{q}/tiny", np.finfo(np.float32).tiny, np.float32),
            const_node(f"{q}/qmax", float(INT8_MAX), np.float32),
            helper.make_node("Abs", [w], [f"{q}/abs"], name=f"/{q}/Abs"),
            helper.make_node("ReduceMax", [f"{q}/abs", f"{q}/axes"], [f"{q}/amax"], name=f"/{q}/ReduceMax", keepdims=0),
            helper.make_node("Max", [f"{q}/amax", f"{q}/tiny"], [f"{q}/amax_pos"], name=f"/{q}/Max"),
            helper.make_node("Div", [f"{q}/amax_pos", f"{q}/qmax"], [f"{linear}.scale_int8"], name=f"/{q}/Scale"),
            const_node(f"{q}/zero", np.full(p.n, ZERO), np.uint8),  # per-axis: one zero point per channel
            helper.make_node("QuantizeLinear", [w, f"{linear}.scale_int8", f"{q}/zero"], [f"{q}/int8"],
                             name=f"/{q}/Quantize", axis=0),
            helper.make_node("Transpose", [f"{q}/int8"], [f"{linear}.weight_int8"], name=f"/{q}/Transpose",
                             perm=[1, 0]),
        ]
        outputs += [helper.make_tensor_value_info(f"{linear}.weight_int8", TensorProto.UINT8, [p.k, p.n]),
                    helper.make_tensor_value_info(f"{linear}.scale_int8", TensorProto.FLOAT, [p.n])]
    graph = helper.make_graph(nodes, "encoder_weights", [], outputs, inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", WEIGHTS_OPSET)], ir_version=WEIGHTS_IR,
                              producer_name="asrquant")
    share_constants(proto)
    return proto


def _packed_tensors(linear: str, p: PackedNBits) -> list[onnx.TensorProto]:
    """Codes [N, n_blocks * block], scales and zero points [N, n_blocks] as DequantizeLinear reads
    them (blocks along axis 1). The codes' bytes are MatMulNBits' (4-bit: two per byte, low bits
    first, which is also ONNX's uint4 packing); the zero points are repacked over the whole tensor
    instead of per row, and made explicit (2^(bits-1)) for symmetric codes."""
    n, n_blocks = p.scales.shape
    zero = _unpack_rows(p.zero_points, p.bits, n_blocks) if p.zero_points is not None else \
        np.full((n, n_blocks), 1 << (p.bits - 1), np.uint8)
    return [_uint_tensor(f"{linear}.codes", p.b.reshape(n, -1), p.bits, (n, n_blocks * p.block_size)),
            numpy_helper.from_array(p.scales, f"{linear}.scales"),
            _uint_tensor(f"{linear}.zero_points", _pack_flat(zero, p.bits), p.bits, (n, n_blocks))]


def _unpack_rows(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """uint8 [N, ceil(count * bits / 8)] (values low bits first) -> uint8 [N, count]."""
    if bits == 8:
        return packed[:, :count]
    per = 8 // bits
    parts = [(packed >> (bits * i)) & ((1 << bits) - 1) for i in range(per)]
    return np.stack(parts, -1).reshape(packed.shape[0], -1)[:, :count].astype(np.uint8)


def _pack_flat(values: np.ndarray, bits: int) -> np.ndarray:
    """uint8 values -> bytes, ``8 / bits`` per byte, low bits first, over the flattened tensor."""
    if bits == 8:
        return values
    flat = values.reshape(-1)
    per = 8 // bits
    flat = np.concatenate([flat, np.zeros(-flat.size % per, np.uint8)]).reshape(-1, per)
    return sum((flat[:, i].astype(np.uint8) << (bits * i)) for i in range(per)).astype(np.uint8)


def _uint_tensor(name: str, data: np.ndarray, bits: int, dims: tuple[int, ...]) -> onnx.TensorProto:
    kind = {4: TensorProto.UINT4, 8: TensorProto.UINT8}[bits]
    return helper.make_tensor(name, kind, list(dims), np.ascontiguousarray(data, np.uint8).tobytes(), raw=True)


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
