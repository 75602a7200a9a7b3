"""AWQ (Lin et al., 2023): protect the input channels that carry large activations by scaling
them up in the weight (and down in the input) before round-to-nearest, then optionally search a
clipping ratio per group.

    s = mean|x|^alpha, normalised so that sqrt(max(s) * min(s)) = 1, alpha on a grid in [0, 1)
    W' = W * s (per input channel);   the layer computes (x / s) @ Q(W')^T
    loss(alpha) = || X W^T - X (Q(W') / s)^T ||^2 = tr(D H D^T),  D = W - Q(W') / s

The losses are computed exactly over all calibration tokens from the Gram matrix H = X^T X
rather than from a token sample (a sample of inputs may be given instead; its Gram matrix is
used). alpha = 0 is plain RTN, so the search never ends worse than RTN on the calibration data.
The clipping search then tries, per output channel and group, ranges shrunk by up to
``max_shrink`` and keeps the one with the smallest output error of that group, measured with the
group's diagonal block of H. "AWQ-lite" (as NVIDIA ModelOpt names it) is the scale search alone.
Scales found for several Linears that share one input are found jointly by concatenating their
weights along the output dimension (the caller does that).
"""

from __future__ import annotations

from types import MappingProxyType

import torch
from torch import Tensor

from ..qtensor import QuantizedWeight
from ..scheme import QuantScheme
from ..threads import one_cpu_thread
from .gptq import default_device
from .registry import ScaleSearch, register
from .rtn import fake_quantize, grouped, rtn, tensor_global_scale


def _gram(inputs_sample: Tensor | None, hessian: Tensor | None, n: int, dev) -> Tensor:
    if hessian is not None:
        h = hessian.detach().to(dev, torch.float32)
    elif inputs_sample is not None:
        x = inputs_sample.detach().reshape(-1, n).to(dev, torch.float32)
        h = x.T @ x
    else:
        raise ValueError("AWQ needs calibration inputs or their Gram matrix (hessian)")
    if h.shape != (n, n):
        raise ValueError(f"Gram matrix must be [{n}, {n}], got {list(h.shape)}")
    return h


def _output_loss(d: Tensor, h: Tensor) -> float:
    return torch.sum((d @ h) * d).item()


def awq_scales(act_mean_abs: Tensor, alpha: float) -> Tensor:
    s = act_mean_abs.float().clamp(min=1e-4).pow(alpha)
    return s / torch.sqrt(s.max() * s.min())


def search_scale(w: Tensor, h: Tensor, act_mean_abs: Tensor, scheme: QuantScheme, grid: int = 20):
    """Best (input_scale, alpha, relative loss) over alpha = i / grid, i = 0..grid-1."""
    ref = max(_output_loss(w, h), 1e-30)
    best = (None, 0.0, float("inf"))
    for i in range(grid):
        alpha = i / grid
        s = awq_scales(act_mean_abs.to(w.device), alpha)
        wq = fake_quantize(w * s[None, :], scheme) / s[None, :]
        loss = _output_loss(w - wq, h) / ref
        if loss < best[2]:
            best = (s, alpha, loss)
    return best


def search_clip(
    w: Tensor, h: Tensor, scheme: QuantScheme, grid: int = 20, max_shrink: float = 0.5
) -> Tensor:
    """Per (output channel, group) clipping ratio in (1 - max_shrink, 1] minimising that group's output error."""
    out, n = w.shape
    g = scheme.group_len(n)
    wg = grouped(w, g)  # [out, G, g]
    n_groups = wg.shape[1]
    pad = n_groups * g - n
    hp = torch.nn.functional.pad(h, (0, pad, 0, pad))
    hb = torch.stack([hp[j * g : (j + 1) * g, j * g : (j + 1) * g] for j in range(n_groups)])  # [G, g, g]
    gs = tensor_global_scale(w, scheme)
    best_err = torch.full((out, n_groups), float("inf"), device=w.device)
    best_ratio = torch.ones(out, n_groups, device=w.device)
    for i in range(max(1, int(max_shrink * grid))):
        ratio = 1 - i / grid
        d = grouped(w - fake_quantize(w, scheme, clip=ratio, global_scale=gs), g)
        err = torch.einsum("ogi,gij,ogj->og", d, hb, d)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_ratio = torch.where(better, torch.full_like(best_ratio, ratio), best_ratio)
    return best_ratio


def awq_search(
    weight: Tensor,
    act_mean_abs: Tensor,
    inputs_sample: Tensor | None,
    scheme: QuantScheme,
    grid: int = 20,
    clip: bool = True,
    *,
    hessian: Tensor | None = None,
    clip_grid: int = 20,
    max_shrink: float = 0.5,
    device=None,
) -> tuple[Tensor, Tensor | None]:
    """(input_scale [in], clip ratios [out, G] or None) for ``weight`` [out, in].

    ``act_mean_abs`` [in] is the mean |x| per input channel; the losses use ``hessian`` (X^T X over
    the calibration tokens) when given, else the Gram matrix of ``inputs_sample`` [tokens, in].
    """
    s, ratios, _ = search_awq(weight, act_mean_abs, inputs_sample, scheme, grid, clip,
                              hessian, clip_grid, max_shrink, device)
    return s, ratios


def search_awq(weight, act_mean_abs, inputs_sample, scheme, grid, clip, hessian, clip_grid, max_shrink, device):
    """:func:`awq_search` plus a dict of what was found (alpha, relative loss) for reports."""
    dev = torch.device(device) if device is not None else default_device()
    with one_cpu_thread(dev):  # many mid-sized ops: on a shared CPU, threads cost more than they give
        return _awq_on(weight, act_mean_abs, inputs_sample, scheme, grid, clip, hessian, clip_grid, max_shrink, dev)


def _awq_on(weight, act_mean_abs, inputs_sample, scheme, grid, clip, hessian, clip_grid, max_shrink, dev):
    w = weight.detach().to(dev, torch.float32)
    n = w.shape[1]
    h = _gram(inputs_sample, hessian, n, dev)
    s, alpha, loss = search_scale(w, h, act_mean_abs.detach().to(dev), scheme, grid)
    ratios = None
    if clip:
        hs = h / s[:, None] / s[None, :]  # Gram matrix of the scaled inputs x / s
        ratios = search_clip(w * s[None, :], hs, scheme, clip_grid, max_shrink)
    return s.cpu(), None if ratios is None else ratios.cpu(), {"alpha": alpha, "scale_search_loss": loss}


def awq(
    weight: Tensor,
    act_mean_abs: Tensor,
    scheme: QuantScheme,
    *,
    hessian: Tensor | None = None,
    inputs_sample: Tensor | None = None,
    grid: int = 20,
    clip: bool = True,
    clip_grid: int = 20,
    max_shrink: float = 0.5,
    device=None,
) -> QuantizedWeight:
    """Search, then quantize ``weight * s`` by RTN with the clipping found; ``input_scale`` = s."""
    s, ratios, info = search_awq(weight, act_mean_abs, inputs_sample, scheme, grid, clip,
                                 hessian, clip_grid, max_shrink, device)
    return apply_awq(weight, s, ratios, scheme, info)


def apply_awq(weight: Tensor, s: Tensor, ratios: Tensor | None, scheme: QuantScheme,
              info: dict | None = None) -> QuantizedWeight:
    qw = rtn(weight.detach().float().cpu() * s[None, :], scheme, clip=ratios)
    qw.input_scale = s.float().contiguous()
    qw.info.update(info or {})
    return qw


@register
class AWQ(ScaleSearch):
    """Scale search, then a clipping search per group. Not for embedding tables: the scale would
    multiply the table's columns, which its lookups cannot undo without an extra op."""

    name = "awq"
    options = MappingProxyType({"grid": (int, 20), "clip": (bool, True), "clip_grid": (int, 20),
                                "max_shrink": (float, 0.5)})

    def search(self, weight, scheme, stats, device, grid=20, clip=True, clip_grid=20, max_shrink=0.5):
        return search_awq(weight, stats.mean_abs, None, scheme, grid, clip,
                          stats.hessian, clip_grid, max_shrink, device)

    def apply(self, weight, s, ratios, scheme, info):
        return apply_awq(weight, s, ratios, scheme, info)


@register
class AWQLite(AWQ):
    """The scale search alone."""

    name = "awq-lite"
    options = MappingProxyType({"grid": (int, 20)})

    def search(self, weight, scheme, stats, device, grid=20):
        return super().search(weight, scheme, stats, device, grid, clip=False)
