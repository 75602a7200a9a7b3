"""RTN, GPTQ and AWQ on single random layers."""

import pytest
import torch

from asrquant.quant.algorithms.awq import awq, awq_search
from asrquant.quant.algorithms.gptq import GPTQError, gptq, inverse_hessian_cholesky
from asrquant.quant.algorithms.rtn import rtn
from asrquant.quant.qtensor import dequantize, effective_weight
from asrquant.quant.scheme import QuantScheme

SCHEMES = [QuantScheme.int(4, 64), QuantScheme.int(4, 32, True), QuantScheme.int(3, -1), QuantScheme.int(8, -1, True),
           QuantScheme.nvfp4(), QuantScheme.mxfp4()]


def correlated_layer(out=96, n=256, tokens=2048, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, n, generator=g) * 0.02
    mix = torch.randn(n, n, generator=g) / n**0.5
    x = (torch.randn(tokens, n, generator=g) @ mix + 0.3 * torch.randn(tokens, n, generator=g))
    x = x * torch.exp(torch.randn(n, generator=g) * 0.5)
    return w, x


def outlier_layer(out=96, n=256, tokens=2048, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, n, generator=g) * 0.02
    mag = torch.ones(n)
    mag[torch.randperm(n, generator=g)[:6]] = 40.0
    return w, torch.randn(tokens, n, generator=g) * mag


def out_err(x, w, wq):
    y = x @ w.T
    return ((y - x @ wq.T).norm() / y.norm()).item()


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_gptq_beats_rtn_on_correlated_inputs(scheme):
    w, x = correlated_layer()
    h = x.T @ x
    e_rtn = out_err(x, w, dequantize(rtn(w, scheme)))
    qw = gptq(w, h, scheme, device="cpu")
    assert qw.codes.shape == w.shape and qw.scheme == scheme
    e_gptq = out_err(x, w, dequantize(qw))
    assert e_gptq < 0.85 * e_rtn, (e_gptq, e_rtn)


@pytest.mark.parametrize("act_order,static", [(False, False), (False, True), (True, True)])
def test_gptq_orderings(act_order, static):
    w, x = correlated_layer(n=192)  # groups of 64, three blocks of 64 columns
    e_rtn = out_err(x, w, dequantize(rtn(w, QuantScheme.int(4, 64))))
    qw = gptq(w, x.T @ x, QuantScheme.int(4, 64), block_size=64, act_order=act_order, static_groups=static,
              device="cpu")
    assert out_err(x, w, dequantize(qw)) < e_rtn


def test_gptq_act_order_needs_static_groups():
    w, x = correlated_layer()
    with pytest.raises(ValueError, match="static_groups"):
        gptq(w, x.T @ x, QuantScheme.int(4, 64), act_order=True, static_groups=False)


def test_gptq_dead_inputs_and_cholesky_retry():
    w, x = correlated_layer(n=64, tokens=16)  # rank-deficient H
    x[:, 5] = 0.0  # a dead input channel
    qw = gptq(w, x.T @ x, QuantScheme.int(4, 32), damp=1e-9, device="cpu")
    assert torch.isfinite(dequantize(qw)).all()
    # an indefinite matrix: needs more jitter than asked for
    h = -torch.eye(8) * 0.5 + 0.01 * torch.ones(8, 8)
    _, used = inverse_hessian_cholesky(h, 0.01)
    assert used > 0.01
    with pytest.raises(GPTQError):
        inverse_hessian_cholesky(-1000 * torch.eye(8), 0.01, retries=2)


@pytest.mark.parametrize("scheme", [QuantScheme.int(4, 64), QuantScheme.int(3, -1), QuantScheme.nvfp4()],
                         ids=lambda s: s.name)
def test_awq_beats_rtn_with_outlier_channels(scheme):
    w, x = outlier_layer()
    e_rtn = out_err(x, w, dequantize(rtn(w, scheme)))
    qw = awq(w, x.abs().mean(0), scheme, hessian=x.T @ x, device="cpu")
    assert qw.input_scale is not None and qw.input_scale.shape == (w.shape[1],)
    e_awq = out_err(x, w, effective_weight(qw))
    assert e_awq < 0.7 * e_rtn, (e_awq, e_rtn)
    lite = awq(w, x.abs().mean(0), scheme, hessian=x.T @ x, clip=False, device="cpu")
    assert e_awq <= out_err(x, w, effective_weight(lite)) * 1.001


def test_awq_search_from_input_sample_and_never_worse_than_rtn():
    w, x = correlated_layer()
    scheme = QuantScheme.mxfp4()
    s, ratios = awq_search(w, x.abs().mean(0), x, scheme, grid=10, clip=True, device="cpu")
    assert s.shape == (w.shape[1],) and ratios.shape == (w.shape[0], w.shape[1] // 32)
    assert ((ratios > 0.5) & (ratios <= 1.0)).all()
    s2, none = awq_search(w, x.abs().mean(0), x, scheme, grid=10, clip=False, device="cpu")
    assert none is None
    wq = dequantize(rtn(w * s2[None], scheme)) / s2[None]
    assert out_err(x, w, wq) <= out_err(x, w, dequantize(rtn(w, scheme))) + 1e-6


HALF_SCALE_SCHEMES = [QuantScheme.int(4, 64, scale_dtype="float16"), QuantScheme.int(8, -1, True, "float16"),
                      QuantScheme.int(3, 32, scale_dtype="bfloat16")]


def representable(scales: torch.Tensor, dtype: torch.dtype) -> bool:
    return bool(torch.equal(scales.to(dtype).float(), scales))


@pytest.mark.parametrize("scheme", HALF_SCALE_SCHEMES, ids=lambda s: s.name)
def test_half_precision_scales_are_stored_exactly_and_cost_almost_nothing(scheme):
    """Every algorithm's scales are values of the scheme's dtype (so a float16 file holds them
    exactly), and the codes chosen against them lose little against float32 scales."""
    w, x = correlated_layer()
    full = QuantScheme.int(scheme.bits, scheme.group_size, scheme.symmetric)
    made = {
        "rtn": (rtn(w, scheme), rtn(w, full)),
        "gptq": (gptq(w, x.T @ x, scheme, device="cpu"), gptq(w, x.T @ x, full, device="cpu")),
        "awq": (awq(w, x.abs().mean(0), scheme, hessian=x.T @ x, device="cpu"),
                awq(w, x.abs().mean(0), full, hessian=x.T @ x, device="cpu")),
    }
    for algo, (half, ref) in made.items():
        dtype = scheme.scale_torch_dtype
        assert representable(half.scales, dtype) and not representable(ref.scales, dtype), algo
        e_half, e_ref = out_err(x, w, effective_weight(half)), out_err(x, w, effective_weight(ref))
        assert e_half < 1.02 * e_ref, (algo, e_half, e_ref)


def test_codes_are_the_nearest_ones_for_the_rounded_scale():
    """Rounding the scale after coding would leave codes made for another scale: RTN's codes must
    be exactly round(w / stored scale) + zero."""
    w, _ = correlated_layer(n=128)
    qw = rtn(w, QuantScheme.int(4, 64, scale_dtype="float16"))
    s = qw.scales.repeat_interleave(64, dim=1)
    z = qw.zero_points.float().repeat_interleave(64, dim=1)
    assert torch.equal(qw.codes, (torch.round(w / s) + z).clamp(0, 15).to(torch.uint8))


def heavy_tailed_layer(out=96, n=256, tokens=2048, seed=0):
    """Weights with a few large entries per row (as trained Linears have), correlated inputs."""
    _, x = correlated_layer(out, n, tokens, seed)
    torch.manual_seed(seed)
    return torch.distributions.StudentT(2.5).sample((out, n)) * 0.01, x


@pytest.mark.parametrize("scheme", [QuantScheme.int(4, 64), QuantScheme.int(4, 32, True)], ids=lambda s: s.name)
def test_gptq_clip_search_picks_grid_factors_and_lowers_the_error_on_heavy_tailed_weights(scheme):
    from asrquant.quant.algorithms.gptq import CLIP_GRID, clip_search
    from asrquant.quant.algorithms.rtn import fake_quantize

    w, x = heavy_tailed_layer()
    h = x.T @ x
    clip = clip_search(w, torch.diag(h), scheme)
    assert clip.shape == (w.shape[0], w.shape[1] // scheme.group_size)
    assert torch.isin(clip, torch.tensor(CLIP_GRID)).all() and (clip < 1).any()
    # per group the chosen factor's weighted error is the least of the grid, so also in sum
    hd = torch.diag(h)
    def weighted(c):
        return (((w - fake_quantize(w, scheme, clip=c)) ** 2) * hd).sum().item()
    assert weighted(clip) <= weighted(1.0)
    plain = out_err(x, w, dequantize(gptq(w, h, scheme, device="cpu")))
    searched = out_err(x, w, dequantize(gptq(w, h, scheme, clip_search=True, device="cpu")))
    assert searched < plain, (searched, plain)


def test_gptq_clip_search_needs_static_groups():
    w, x = correlated_layer()
    with pytest.raises(ValueError, match="clip_search needs static_groups"):
        gptq(w, x.T @ x, QuantScheme.int(4, 64), act_order=False, static_groups=False, clip_search=True)


def test_gptq_float_inputs_fits_the_float_outputs_from_drifted_inputs():
    """GPTAQ's target: the float layer's output on its float inputs X~, reached from the drifted
    inputs X the quantized model gives. GPTQ on W* = W + W C H^-1 lowers that error against plain
    GPTQ (which reproduces W on X); with no drift (C = 0) it is plain GPTQ, code for code."""
    w, xf = correlated_layer()
    g = torch.Generator().manual_seed(1)
    x = xf + 0.15 * xf.std() * torch.randn(xf.shape, generator=g) @ (torch.randn(256, 256, generator=g) / 16)
    h, c = x.T @ x, (xf - x).T @ x
    scheme = QuantScheme.int(4, 64)

    def float_err(wq):
        y = xf @ w.T
        return ((y - x @ wq.T).norm() / y.norm()).item()

    plain = gptq(w, h, scheme, device="cpu")
    asym = gptq(w, h, scheme, device="cpu", cross=c)
    assert asym.info["float_inputs_shift"] > 0
    assert float_err(dequantize(asym)) < 0.9 * float_err(dequantize(plain)), (
        float_err(dequantize(asym)), float_err(dequantize(plain)))
    same = gptq(w, h, scheme, device="cpu", cross=torch.zeros_like(h))
    assert torch.equal(same.codes, plain.codes) and torch.equal(same.scales, plain.scales)
    with pytest.raises(ValueError, match="cross"):
        gptq(w, h, scheme, device="cpu", cross=c[:10])
