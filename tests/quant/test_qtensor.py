"""The representation: validation, packing, and dequantization against float64 references."""

import math

import numpy as np
import pytest
import torch
from quant_refs import E2M1_REF, E4M3_REF

from asrquant.quant.algorithms.rtn import rtn
from asrquant.quant.qtensor import QuantizedWeight, dequantize, effective_weight, pack_int, unpack_int
from asrquant.quant.scheme import QuantScheme

INT_SCHEMES = [
    QuantScheme.int(bits, group, sym)
    for bits in range(2, 9)
    for group in (32, 64, 128, -1)
    for sym in (False, True)
]


def weight(out=48, inp=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inp, generator=g) * 0.05
    w[0, 3] = 0.9  # an outlier
    w[1] = 0.0  # an all-zero row
    return w


def ref_dequantize(qw: QuantizedWeight) -> np.ndarray:
    """float64, element by element from the documented definition."""
    s = qw.scheme
    out, n = qw.shape
    g = s.group_len(n)
    codes = qw.codes.numpy().astype(np.int64)
    res = np.zeros((out, n))
    for j in range(n):
        k = j // g
        if s.format == "int":
            zero = 2 ** (s.bits - 1) if s.symmetric else qw.zero_points[:, k].numpy().astype(np.float64)
            res[:, j] = (codes[:, j] - zero) * qw.scales[:, k].double().numpy()
        elif s.format == "nvfp4":
            scale = np.array([E4M3_REF[b] for b in qw.scales[:, k].tolist()]) * float(qw.global_scale)
            res[:, j] = np.array([E2M1_REF[c] for c in codes[:, j]]) * scale
        else:
            scale = np.array([2.0 ** (b - 127) for b in qw.scales[:, k].tolist()])
            res[:, j] = np.array([E2M1_REF[c] for c in codes[:, j]]) * scale
    return res


@pytest.mark.parametrize("scheme", INT_SCHEMES, ids=lambda s: s.name)
def test_int_dequantize_matches_float64_reference(scheme):
    w = weight()
    qw = rtn(w, scheme)
    got = dequantize(qw)
    assert got.dtype == torch.float32 and got.shape == w.shape
    ref = ref_dequantize(qw)
    # (code - zero) is a small integer: float32 has exactly one rounding, the float64 product's
    assert np.array_equal(got.numpy(), ref.astype(np.float32))
    assert int(qw.codes.max()) < 2**scheme.bits
    # round to nearest: every element within half a step of its group, or clipped at the range end
    g = scheme.group_len(w.shape[1])
    step = qw.scales.repeat_interleave(g, 1)[:, : w.shape[1]]
    assert ((got - w).abs() <= step * 0.5 * 1.0001 + 1e-7).all()
    assert (got[1] == 0).all()


@pytest.mark.parametrize("scheme", [QuantScheme.nvfp4(), QuantScheme.mxfp4()], ids=lambda s: s.name)
def test_fp4_dequantize_matches_float64_reference(scheme):
    w = weight(inp=128)
    qw = rtn(w, scheme)
    got = dequantize(qw).double().numpy()
    ref = ref_dequantize(qw)
    # nvfp4: two float32 roundings (scale product, value product); mxfp4 is exact
    np.testing.assert_allclose(got, ref, rtol=2**-22 if scheme.format == "nvfp4" else 0, atol=0)
    # each element is the nearest grid value of its block (up to saturation at 6 x scale)
    assert np.abs(got - w.numpy()).max() < 0.25 * float(w.abs().max())


def test_rtn_is_idempotent():
    for scheme in INT_SCHEMES[::5] + [QuantScheme.nvfp4(), QuantScheme.mxfp4()]:
        w = weight(inp=128)
        qw = rtn(w, scheme)
        again = rtn(dequantize(qw), scheme)
        # the same grid again (up to the last bit of a recomputed float32 scale)
        assert torch.allclose(dequantize(again), dequantize(qw), rtol=1e-5, atol=1e-8), scheme.name


def test_short_last_group():
    w = weight(inp=100)
    qw = rtn(w, QuantScheme.int(4, 32))
    assert qw.scales.shape == (48, 4)
    assert np.array_equal(dequantize(qw).numpy(), ref_dequantize(qw).astype(np.float32))


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("n", [1, 7, 64, 129])
def test_pack_unpack_round_trip(bits, n):
    rng = np.random.default_rng(bits * 1000 + n)
    codes = rng.integers(0, 2**bits, size=(5, n), dtype=np.uint8)
    packed = pack_int(codes, bits)
    assert packed.dtype == np.uint8 and packed.shape == (5, math.ceil(n * bits / 8))
    assert np.array_equal(unpack_int(packed, bits, n), codes)
    t = torch.from_numpy(codes)
    assert torch.equal(unpack_int(pack_int(t, bits), bits, n), t)


def test_pack_order_low_nibble_first():
    assert pack_int(np.array([[1, 2, 3]], np.uint8), 4).tolist() == [[0x21, 0x03]]
    assert pack_int(np.array([[1, 2, 3, 0]], np.uint8), 2).tolist() == [[0b00111001]]
    with pytest.raises(ValueError):
        pack_int(np.array([[16]], np.uint8), 4)


def test_validation():
    qw = rtn(weight(), QuantScheme.int(4, 64))
    with pytest.raises(ValueError, match="scales"):
        QuantizedWeight(qw.codes, qw.scales[:, :1], qw.zero_points, qw.scheme, qw.shape)
    with pytest.raises(ValueError, match="zero_points"):
        QuantizedWeight(qw.codes, qw.scales, None, qw.scheme, qw.shape)
    with pytest.raises(ValueError, match="codes"):
        QuantizedWeight(qw.codes.int(), qw.scales, qw.zero_points, qw.scheme, qw.shape)
    nv = rtn(weight(), QuantScheme.nvfp4())
    with pytest.raises(ValueError, match="global_scale"):
        QuantizedWeight(nv.codes, nv.scales, None, nv.scheme, nv.shape)


def test_tensors_round_trip_and_input_scale():
    qw = rtn(weight(), QuantScheme.nvfp4())
    back = QuantizedWeight.from_tensors(qw.tensors(), qw.scheme)
    assert torch.equal(dequantize(back), dequantize(qw))
    s = torch.linspace(0.5, 2.0, 256)
    qw.input_scale = s
    assert torch.allclose(effective_weight(qw), dequantize(qw) / s)


def test_fake_quantize_is_dequantize_of_rtn():
    from asrquant.quant.algorithms.rtn import fake_quantize

    w = weight(inp=100)
    for scheme in INT_SCHEMES[::3] + [QuantScheme.nvfp4(), QuantScheme.mxfp4()]:
        assert torch.equal(fake_quantize(w, scheme, clip=0.9), dequantize(rtn(w, scheme, clip=0.9))), scheme.name
