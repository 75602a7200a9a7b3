"""The int8 chain's numbers in torch (asrquant.quant.int8_chain): the exporter's rule, and
straight-through gradients."""

import numpy as np
import torch

from asrquant.quant.int8_chain import channels_int8_ste, requantize_per_channel, rows_int8, rows_int8_ste


def numpy_requantize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The definition as the exporter wrote it in numpy: s = max|w| / 127 per column, round half to even."""
    scale = np.maximum(np.abs(w).max(axis=0), np.float32(np.finfo(np.float32).tiny)) / np.float32(127)
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale.astype(np.float32)


def test_the_torch_rule_is_the_numpy_definition_bit_for_bit():
    w = np.random.default_rng(0).standard_normal((96, 40)).astype(np.float32)
    w[:, 3] *= 1e-3
    w[:, 4] = 0  # an all-zero channel: the tiny floor, codes 0
    w[:, 8] = 0
    w[:3, 8] = (127, 2.5, -3.5)  # scale 1: exact ties, rounded half to even by both
    q, s = requantize_per_channel(torch.from_numpy(w))
    ref_q, ref_s = numpy_requantize(w)
    assert q.dtype == torch.int8 and np.array_equal(q.numpy(), ref_q) and np.array_equal(s.numpy(), ref_s)
    assert q[1:3, 8].tolist() == [2, -4]


def test_rows_are_rounded_each_on_its_own_scale():
    x = torch.randn(3, 5, 64)
    x[1, 2] *= 100  # one loud row does not coarsen the others
    y = rows_int8(x)
    step = x.abs().amax(-1, keepdim=True) / 127
    assert ((y - x).abs() <= step / 2 + 1e-6 * step).all()
    assert torch.equal(y[0], rows_int8(x[0]))


def test_straight_through_rounds_forward_and_passes_gradients_back():
    x = torch.randn(4, 32, requires_grad=True)
    w = torch.randn(8, 32, requires_grad=True)
    y = rows_int8_ste(x) @ channels_int8_ste(w).t()
    assert torch.equal(y, rows_int8(x.detach()) @ (requantize_per_channel(w.detach().t())[0].float()
                                                   * requantize_per_channel(w.detach().t())[1]))
    y.sum().backward()
    assert torch.allclose(x.grad, torch.ones(4, 8) @ channels_int8_ste(w).detach())  # d/dx through the identity
    assert torch.allclose(w.grad, torch.ones(4, 8).t() @ rows_int8(x.detach()))
