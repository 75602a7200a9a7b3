"""MatMulNBits packing: the ONNX weights dequantize to the fake-quant weights bit for bit."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from asrquant.errors import ModelError
from asrquant.export.onnx.matmulnbits import pack, replace_linears, weight_name
from asrquant.quant.algorithms.rtn import rtn
from asrquant.quant.qtensor import dequantize
from asrquant.quant.scheme import QuantScheme

SCHEMES = [
    QuantScheme.int(bits, group, sym)
    for bits in (2, 4, 8)
    for group in (16, 64, 128, 96, -1)
    for sym in (False, True)
]


def weight(out=40, inp=384, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inp, generator=g) * 0.05
    w[0, 3] = 0.9  # an outlier
    w[1] = 0.0  # an all-zero row
    return w


def unpack_bits(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Codes from bytes, low bits first, written from the contrib op's definition (no shared code)."""
    flat = packed.reshape(packed.shape[0], -1).astype(np.uint16)
    per_byte = 8 // bits
    out = np.zeros((flat.shape[0], flat.shape[1] * per_byte), np.uint8)
    for j in range(per_byte):
        out[:, j::per_byte] = (flat >> (bits * j)) & ((1 << bits) - 1)
    return out[:, :count]


def dequantize_matmulnbits(b, scales, zero_points, bits, block_size, k) -> np.ndarray:
    """dequant(B)[n, k] = (code - zero_point) * scale per the com.microsoft.MatMulNBits definition."""
    n, n_blocks, _ = b.shape
    codes = unpack_bits(b.reshape(n, -1), bits, n_blocks * block_size)[:, :k].astype(np.float32)
    if zero_points is None:
        zp = np.full((n, n_blocks), 2 ** (bits - 1), np.float32)
    else:
        zp = unpack_bits(zero_points, bits, n_blocks).astype(np.float32)
    block = np.arange(k) // block_size
    return (codes - zp[:, block]) * scales[:, block]


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_packed_weights_dequantize_bit_exactly(scheme):
    qw = rtn(weight(), scheme)
    p = pack(qw)
    ours = dequantize_matmulnbits(p.b, p.scales, p.zero_points, p.bits, p.block_size, p.k)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours.view(np.uint32), dequantize(qw).numpy().view(np.uint32))


def test_last_block_short():
    qw = rtn(weight(inp=400), QuantScheme.int(4, 64, False))  # 6 full groups and one of 16
    p = pack(qw)
    assert p.b.shape == (40, 7, 32)
    ours = dequantize_matmulnbits(p.b, p.scales, p.zero_points, 4, p.block_size, 400)
    np.testing.assert_array_equal(ours, dequantize(qw).numpy())


@pytest.mark.parametrize("scheme", [QuantScheme.nvfp4(), QuantScheme.int(3, 64), QuantScheme.int(4, 24)],
                         ids=lambda s: s.name)
def test_unsupported_schemes_are_refused_by_name(scheme):
    w = weight(inp=384)
    with pytest.raises(ModelError, match="decoder.blocks.0.mlp.fc1"):
        pack(rtn(w, scheme), "decoder.blocks.0.mlp.fc1")


def one_linear_graph(k, n):
    w = np.zeros((k, n), np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", weight_name("lin")], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", n])],
        [onnx.numpy_helper.from_array(w, weight_name("lin"))],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("scheme", [QuantScheme.int(4, 64, False), QuantScheme.int(8, 128, True),
                                    QuantScheme.int(2, 32, False), QuantScheme.int(4, -1, True)], ids=lambda s: s.name)
def test_onnxruntime_computes_with_the_dequantized_weight(scheme):
    qw = rtn(weight(out=48, inp=256), scheme)
    proto = one_linear_graph(256, 48)
    # Float compute (level 0; by default 8-bit weights get int8 activations, see accuracy_level_for).
    assert replace_linears(proto, {"lin": pack(qw)}, accuracy_level=0) == ["lin"]
    assert [n.op_type for n in proto.graph.node] == ["MatMulNBits"]
    assert weight_name("lin") not in {t.name for t in proto.graph.initializer}
    x = np.random.default_rng(0).standard_normal((5, 256)).astype(np.float32)
    y = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    ref = x.astype(np.float64) @ dequantize(qw).numpy().astype(np.float64).T
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
