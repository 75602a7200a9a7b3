"""Pack a :class:`~asrquant.quant.QuantizedWeight` as onnxruntime's ``com.microsoft.MatMulNBits``
and put it in place of the MatMul of its Linear in a traced graph.

MatMulNBits computes ``Y = A @ dequant(B)^T`` with, for a weight of N outputs and K inputs,

    B            uint8 [N, n_blocks, block_size * bits / 8]   codes along K, low bits first,
                                                              the last block zero-padded
    scales       float32 [N, n_blocks]
    zero_points  uint8 [N, ceil(n_blocks * bits / 8)]          packed the same way; when absent
                                                              every zero point is 2^(bits - 1)
    dequant(B)[n, k] = (code[n, k] - zero_point[n, k // block_size]) * scale[n, k // block_size]

which is our int dequantization term for term (asymmetric: stored zero points; symmetric: the
implicit 2^(bits-1) of both), so with float32 scales the ONNX weights equal the fake-quant
weights bit for bit. The op wants a power-of-two block size of at least 16; a group that is a
multiple of one (per-channel groups included) is written as several blocks sharing its scale
(blocks are capped at 256, where the CPU kernels have their fast paths).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...errors import ModelError
from ...quant.qtensor import QuantizedWeight, pack_int

DOMAIN = "com.microsoft"
SUPPORTED_BITS = (2, 4, 8)  # onnxruntime's CPU kernels
MIN_BLOCK = 16
MAX_BLOCK = 256  # onnxruntime's CPU kernels have fast paths for 16..256


@dataclass
class PackedNBits:
    b: np.ndarray  # uint8 [N, n_blocks, blob]
    scales: np.ndarray  # float32 [N, n_blocks]
    zero_points: np.ndarray | None  # uint8 [N, ceil(n_blocks * bits / 8)]
    bits: int
    block_size: int
    k: int
    n: int


def block_size_for(group_len: int) -> int | None:
    """Largest power of two in [16, 256] dividing ``group_len``, or None."""
    block = min(group_len & -group_len, MAX_BLOCK)  # lowest set bit: the largest power of two dividing it
    return block if block >= MIN_BLOCK else None


def pack(qw: QuantizedWeight, name: str = "weight") -> PackedNBits:
    s = qw.scheme
    if s.format != "int" or s.bits not in SUPPORTED_BITS:
        raise ModelError(f"{name}: scheme {s.name} cannot be written as MatMulNBits "
                         f"(integer codes of {', '.join(map(str, SUPPORTED_BITS))} bits only)")
    n, k = qw.shape
    group = qw.group_len
    block = block_size_for(group)
    if block is None:
        raise ModelError(f"{name}: group size {group} is not a multiple of a power of two >= {MIN_BLOCK}, "
                         "which MatMulNBits needs as its block size")
    n_blocks = -(-k // block)
    codes = np.zeros((n, n_blocks * block), np.uint8)
    codes[:, :k] = qw.codes.cpu().numpy()
    b = pack_int(codes.reshape(n, n_blocks, block), s.bits)
    group_of_block = (np.arange(n_blocks) * block) // group
    scales = np.ascontiguousarray(qw.scales.cpu().numpy().astype(np.float32)[:, group_of_block])
    zero_points = None
    if not s.symmetric:
        zero_points = pack_int(np.ascontiguousarray(qw.zero_points.cpu().numpy()[:, group_of_block]), s.bits)
    return PackedNBits(b, scales, zero_points, s.bits, block, k, n)


def weight_name(linear: str) -> str:
    """The float initializer of a traced Linear (see :class:`asrquant.export.onnx.graphs.LinearT`)."""
    return f"{linear}.weight_t"


def accuracy_level_for(bits: int, requested: int | None) -> int:
    """The node's ``accuracy_level``: the one requested, else 4 (int8 activations) for 8-bit
    weights and 0 (float32 compute, the fake-quant numbers) for fewer bits. onnxruntime 1.23's CPU
    kernel has no fast float path for 8-bit weights: whisper-base's logits were far slower at level 0
    than at level 4 (figures: benchmarks/onnx-export/README.md)."""
    if requested is not None:
        return requested
    return 4 if bits == 8 else 0


def _make_node(linear: str, a: str, out: str, p: PackedNBits,
               accuracy_level: int | None) -> tuple[onnx.NodeProto, list]:
    inits = [numpy_helper.from_array(p.b, f"{linear}.qweight"), numpy_helper.from_array(p.scales, f"{linear}.scales")]
    if p.zero_points is not None:
        inits.append(numpy_helper.from_array(p.zero_points, f"{linear}.zero_points"))
    attrs = dict(K=p.k, N=p.n, bits=p.bits, block_size=p.block_size)
    level = accuracy_level_for(p.bits, accuracy_level)
    if level:  # left out at 0, as onnxruntime's own quantizer does
        attrs["accuracy_level"] = level
    node = helper.make_node("MatMulNBits", [a] + [t.name for t in inits], [out], name=f"/{linear}/MatMulNBits",
                            domain=DOMAIN, **attrs)
    return node, inits


def replace_linears(proto: onnx.ModelProto, packed: dict[str, PackedNBits],
                    accuracy_level: int | None = None) -> list[str]:
    """Swap the MatMul of every Linear in ``packed`` (by module name) for a MatMulNBits.

    Returns the Linears found in this graph; their float initializers are removed."""
    g = proto.graph
    by_weight = {weight_name(n): n for n in packed}
    found = []
    for i, node in enumerate(g.node):
        if node.op_type != "MatMul" or node.input[1] not in by_weight:
            continue
        linear = by_weight[node.input[1]]
        new, inits = _make_node(linear, node.input[0], node.output[0], packed[linear], accuracy_level)
        g.node[i].CopyFrom(new)
        g.initializer.extend(inits)
        found.append(linear)
    gone = {weight_name(n) for n in found}
    still_used = {x for node in g.node for x in node.input}
    keep = [t for t in g.initializer if t.name not in gone or t.name in still_used]
    del g.initializer[:]
    g.initializer.extend(keep)
    if found and not any(o.domain == DOMAIN for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return found


# --- a tied embedding: one packed table for the logits and the row lookups -------------------------


def replace_tied_embedding(proto: onnx.ModelProto, table: str, p: PackedNBits,
                           accuracy_level: int | None = None) -> bool:
    """Store the float embedding initializer ``table`` [V, D] once, packed as ``p``.

    The logits ``Gemm(hidden, table, transB=1)`` become a MatMulNBits on the packed table, and
    every ``Gather(table, tokens)`` a few standard ops that gather the packed rows and their
    scales and dequantize them as MatMulNBits does, ``(code - zero_point) * scale`` in float32:
    both read the same initializers, so the table is on disk and in memory once. (onnxruntime's
    GatherBlockQuantized reads another layout of the codes, and a second copy of the table, the
    model's largest matrix, would cost its size again.) Returns whether ``table`` was in the graph.
    """
    g = proto.graph
    if table not in {t.name for t in g.initializer}:
        return False
    prefix = table.rsplit(".", 1)[0]  # decoder.token_embedding.weight -> decoder.token_embedding
    inits = [numpy_helper.from_array(p.b, f"{prefix}.qweight"), numpy_helper.from_array(p.scales, f"{prefix}.scales")]
    if p.zero_points is not None:
        inits.append(numpy_helper.from_array(p.zero_points, f"{prefix}.zero_points"))
    nodes = []
    for node in g.node:
        if node.op_type == "Gemm" and node.input[1] == table:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("transB") != 1 or attrs.get("transA", 0) or len(node.input) > 2:
                raise ModelError(f"{table}: logits Gemm is not hidden @ table^T (attributes {attrs})")
            new, _ = _make_node(prefix, node.input[0], node.output[0], p, accuracy_level)
            new.input[1:] = [t.name for t in inits]
            nodes.append(new)
        elif node.op_type == "Gather" and node.input[0] == table:
            nodes += _dequantized_rows(prefix, node.input[1], node.output[0], p, [t.name for t in inits])
        elif table in node.input:
            raise ModelError(f"{table} is read by a {node.op_type} node ({node.name}), "
                             "not only by the logits and lookups")
        else:
            nodes.append(node)
    del g.node[:]
    g.node.extend(nodes)
    keep = [t for t in g.initializer if t.name != table]
    del g.initializer[:]
    g.initializer.extend(keep + inits)
    if not any(o.domain == DOMAIN for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return True


def const_node(name: str, value, dtype) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], name=f"/{name}",
                            value=numpy_helper.from_array(np.asarray(value, dtype), name))


def _unpack_codes(prefix: str, packed: str, bits: int, out: str, rank: int) -> list[onnx.NodeProto]:
    """uint8 [..., bytes] (``rank`` dimensions) -> uint8 [..., bytes * 8 / bits], low bits first
    (as :func:`pack_int`).

    Opset-17 ops only (BitwiseAnd is opset 18): code j of a byte is ``(byte >> j*bits) mod 2^bits``."""
    per_byte = 8 // bits
    if per_byte == 1:
        return [helper.make_node("Identity", [packed], [out], name=f"/{out}")]
    nodes = [const_node(f"{prefix}/mod", 1 << bits, np.uint8), const_node(f"{prefix}/last_axis", [-1], np.int64)]
    parts = []
    for j in range(per_byte):
        shifted, part = f"{prefix}/shift{j}", f"{prefix}/code{j}"
        nodes += [const_node(f"{shifted}/by", j * bits, np.uint8),
                  helper.make_node("BitShift", [packed, f"{shifted}/by"], [shifted], name=f"/{shifted}",
                                   direction="RIGHT"),
                  helper.make_node("Mod", [shifted, f"{prefix}/mod"], [f"{part}/flat"], name=f"/{part}/Mod"),
                  helper.make_node("Unsqueeze", [f"{part}/flat", f"{prefix}/last_axis"], [part],
                                   name=f"/{part}/Unsqueeze")]
        parts.append(part)
    # [..., bytes, per_byte] -> [..., bytes * per_byte]: the codes in their original order.
    nodes += [helper.make_node("Concat", parts, [f"{prefix}/interleaved"], name=f"/{prefix}/Concat", axis=-1),
              const_node(f"{prefix}/merge_shape", [0] * (rank - 1) + [-1], np.int64),
              helper.make_node("Reshape", [f"{prefix}/interleaved", f"{prefix}/merge_shape"], [out], name=f"/{out}")]
    return nodes


def _dequantized_rows(prefix: str, indices: str, out: str, p: PackedNBits, inits: list[str]) -> list[onnx.NodeProto]:
    """Nodes computing ``out`` [B, T, K] = dequantized rows ``indices`` [B, T] of the packed table."""
    q = f"{out}/dequantize"  # unique per Gather
    parts = ["codes", "scales", "zero_points"][:len(inits)]
    nodes = [helper.make_node("Gather", [init, indices], [f"{q}/{part}"], name=f"/{q}/Gather_{part}", axis=0)
             for init, part in zip(inits, parts)]
    return nodes + dequantize_nodes(q, [f"{q}/{part}" for part in parts], p, lead=2, out=out)


def dequantize_nodes(q: str, inputs: list[str], p: PackedNBits, lead: int, out: str) -> list[onnx.NodeProto]:
    """Nodes computing ``out`` [*L, K] = ``(code - zero_point) * scale`` in float32, as MatMulNBits
    dequantizes, from ``inputs`` = packed codes [*L, n_blocks, blob], scales [*L, n_blocks] and,
    when asymmetric, packed zero points [*L, zp_bytes]; ``lead`` = len(L) (the rows of a table:
    L = [B, T])."""
    nodes = _unpack_codes(f"{q}/codes", inputs[0], p.bits, f"{q}/codes_u8", rank=lead + 2)  # [*L, n_blocks, block]
    nodes.append(helper.make_node("Cast", [f"{q}/codes_u8"], [f"{q}/codes_f"], name=f"/{q}/CastCodes",
                                  to=onnx.TensorProto.FLOAT))
    nodes += [const_node(f"{q}/last_axis", [-1], np.int64),
              helper.make_node("Unsqueeze", [inputs[1], f"{q}/last_axis"], [f"{q}/scale"],
                               name=f"/{q}/UnsqueezeScales")]
    if p.zero_points is None:
        nodes.append(const_node(f"{q}/zero", float(1 << (p.bits - 1)), np.float32))
    else:  # [*L, bytes] -> [*L, 1, bytes] -> codes [*L, 1, n] -> [*L, n_blocks, 1]
        n_blocks = p.scales.shape[1]
        nodes += [const_node(f"{q}/zp_in_shape", [0] * lead + [1, -1], np.int64),
                  helper.make_node("Reshape", [inputs[2], f"{q}/zp_in_shape"], [f"{q}/zp_packed4"], name=f"/{q}/ZpIn")]
        nodes += _unpack_codes(f"{q}/zp", f"{q}/zp_packed4", p.bits, f"{q}/zp_codes", rank=lead + 2)
        nodes += [const_node(f"{q}/zp_out_shape", [0] * lead + [-1], np.int64),
                  helper.make_node("Reshape", [f"{q}/zp_codes", f"{q}/zp_out_shape"], [f"{q}/zp_all"],
                                   name=f"/{q}/ZpOut"),
                  const_node(f"{q}/zp_start", [0], np.int64), const_node(f"{q}/zp_end", [n_blocks], np.int64),
                  helper.make_node("Slice", [f"{q}/zp_all", f"{q}/zp_start", f"{q}/zp_end", f"{q}/last_axis"],
                                   [f"{q}/zp_u8"], name=f"/{q}/ZpSlice"),
                  helper.make_node("Cast", [f"{q}/zp_u8"], [f"{q}/zp_f"], name=f"/{q}/CastZeros",
                                   to=onnx.TensorProto.FLOAT),
                  helper.make_node("Unsqueeze", [f"{q}/zp_f", f"{q}/last_axis"], [f"{q}/zero"],
                                   name=f"/{q}/UnsqueezeZeros")]
    nodes += [helper.make_node("Sub", [f"{q}/codes_f", f"{q}/zero"], [f"{q}/centred"], name=f"/{q}/Sub"),
              helper.make_node("Mul", [f"{q}/centred", f"{q}/scale"], [f"{q}/blocks"], name=f"/{q}/Mul"),
              const_node(f"{q}/row_shape", [0] * lead + [-1], np.int64),
              helper.make_node("Reshape", [f"{q}/blocks", f"{q}/row_shape"], [f"{q}/padded"], name=f"/{q}/Reshape")]
    if p.scales.shape[1] * p.block_size == p.k:
        nodes[-1].output[0] = out
    else:  # the last block was zero-padded: drop the padding
        nodes += [const_node(f"{q}/k_start", [0], np.int64), const_node(f"{q}/k_end", [p.k], np.int64),
                  helper.make_node("Slice", [f"{q}/padded", f"{q}/k_start", f"{q}/k_end", f"{q}/last_axis"], [out],
                                   name=f"/{q}/Slice")]
    return nodes
