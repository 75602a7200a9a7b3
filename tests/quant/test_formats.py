"""The small float formats against independent float64 references of their definitions."""

import math

import numpy as np
import pytest
import torch
from quant_refs import E2M1_REF, E4M3_REF, ref_round

from asrquant.quant.numerics import (
    e2m1_decode,
    e2m1_encode,
    e4m3_decode,
    e4m3_encode,
    e8m0_decode,
    mxfp4_block_scales,
    nvfp4_block_scales,
    nvfp4_tensor_scale,
)


def test_e2m1_grid_is_the_definition():
    assert e2m1_decode(torch.arange(16, dtype=torch.uint8)).tolist() == E2M1_REF
    assert E2M1_REF[:8] == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def test_e2m1_encode_matches_reference():
    rng = np.random.default_rng(0)
    mids = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]
    xs = list(rng.uniform(-8, 8, 3000)) + mids + [-m for m in mids] + [0.0, 6.0, 7.0, 100.0, -100.0, 1e-9]
    got = e2m1_encode(torch.tensor(xs, dtype=torch.float32)).tolist()
    for x, g in zip(xs, got):
        x = float(np.float32(x))
        mag = ref_round(x, E2M1_REF[:8], 1, 6.0)
        want = mag | (8 if x < 0 and mag else 0)
        assert g == want, (x, g, want)


def test_e2m1_ties_to_even():
    got = e2m1_decode(e2m1_encode(torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]))).tolist()
    assert got == [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0]


def test_e4m3_decode_all_patterns():
    got = e4m3_decode(torch.arange(256, dtype=torch.uint8)).double().tolist()
    for b, (g, r) in enumerate(zip(got, E4M3_REF)):
        assert (math.isnan(g) and math.isnan(r)) or g == r, (b, g, r)
    assert E4M3_REF[0x7E] == 448.0 and E4M3_REF[0x01] == 2.0**-9 and E4M3_REF[0x08] == 2.0**-6


def test_e4m3_encode_matches_reference_incl_subnormals_and_saturation():
    rng = np.random.default_rng(1)
    xs = list(rng.uniform(0, 480, 400)) + list(np.exp(rng.uniform(-12, 6.2, 600)))
    xs += [2.0**-10, 2.0**-10 * 1.0001, 2.0**-9 * 1.5, 2.0**-9 * 2.5, 2.0**-6 * (1 + 1 / 16)]  # ties & subnormals
    xs += [447.9, 448.0, 450.0, 464.0, 465.0, 1e6, 0.0]
    xs = [float(np.float32(x)) for x in xs]
    got = e4m3_encode(torch.tensor(xs + [-x for x in xs], dtype=torch.float32)).tolist()
    n = len(xs)
    for i, x in enumerate(xs):
        want = ref_round(x, E4M3_REF[:128], 3, 448.0)
        assert got[i] == want, (x, got[i], want)
        assert got[n + i] == want | 0x80, (-x, got[n + i])
    assert e4m3_encode(torch.tensor([float("nan")])).item() == 0x7F


def test_e4m3_encode_agrees_with_torch_cast():
    x = torch.randn(20000) * torch.exp(torch.randn(20000) * 3)
    x = x.clamp(-448, 448)
    assert torch.equal(e4m3_encode(x), x.to(torch.float8_e4m3fn).view(torch.uint8))


def test_e8m0_powers_of_two():
    bits = torch.arange(255, dtype=torch.uint8)
    got = e8m0_decode(bits).double().tolist()
    assert got == [2.0 ** (b - 127) for b in range(255)]
    assert math.isnan(e8m0_decode(torch.tensor([255], dtype=torch.uint8)).item())


def test_mx_scale_rule_is_ocp_floor():
    amax = torch.exp(torch.randn(5000) * 5).float()
    bits = mxfp4_block_scales(amax)
    for a, b in zip(amax.tolist(), bits.tolist()):
        assert b - 127 == math.floor(math.log2(a)) - 2
        assert 4.0 <= a / 2.0 ** (b - 127) < 8.0
    assert mxfp4_block_scales(torch.tensor([0.0])).item() == 0
    ceil = mxfp4_block_scales(amax, "ceil")
    assert (amax / e8m0_decode(ceil) <= 6.0).all()


def test_nvfp4_scales():
    amax = torch.tensor(12.0)
    gs = nvfp4_tensor_scale(amax)
    assert gs.dtype == torch.float32 and gs.item() == pytest.approx(12.0 / (448 * 6))
    block = torch.tensor([12.0, 6.0, 1e-3, 0.0])
    bits = nvfp4_block_scales(block, gs)
    vals = e4m3_decode(bits).double() * gs.double()
    assert bits[0].item() == 0x7E  # the tensor's amax lands on E4M3's 448
    # every block scale is the E4M3 rounding of amax / 6 in units of the tensor scale
    for b, a in zip(bits.tolist(), block.tolist()):
        assert b == ref_round(float(np.float32(a / 6 / gs.item())), E4M3_REF[:128], 3, 448.0)
    assert vals[3] == 0
    assert nvfp4_tensor_scale(torch.tensor(0.0)).item() == 1.0
