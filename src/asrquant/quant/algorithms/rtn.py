"""Round to nearest: per-group scales from the weights, then each weight to its nearest code.

The two steps are kept apart (:func:`find_params`, :func:`encode`) because GPTQ and AWQ reuse
them: GPTQ encodes one column at a time with scales found earlier, AWQ tries clipped scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..numerics import e2m1_encode, mxfp4_block_scales, nvfp4_block_scales, nvfp4_tensor_scale
from ..qtensor import QuantizedWeight, code_values, scale_values
from ..scheme import QuantScheme
from .registry import Algorithm, register


@dataclass
class QParams:
    """Per-group parameters of a weight, in stored form and as float multipliers/offsets."""

    scales: Tensor  # stored form [out, G]: float32 (int) or uint8 bit patterns (fp4)
    zero_points: Tensor | None  # uint8 [out, G], asymmetric int only
    scale: Tensor  # float32 [out, G] multiplier
    zero: Tensor | float  # float32 [out, G] (or a constant) subtracted from the code value
    global_scale: Tensor | None = None

    def group(self, j: int | slice) -> "QParams":
        """The parameters of group(s) j, keeping the [out, k] shape."""
        sl = j if isinstance(j, slice) else slice(j, j + 1)
        zp = None if self.zero_points is None else self.zero_points[:, sl]
        zero = self.zero[:, sl] if isinstance(self.zero, Tensor) else self.zero
        return QParams(self.scales[:, sl], zp, self.scale[:, sl], zero, self.global_scale)


def grouped(w: Tensor, group: int) -> Tensor:
    """[out, in] -> [out, G, group], zero padding a short last group (zeros change no min/max/amax)."""
    out, n = w.shape
    pad = (-n) % group
    if pad:
        w = F.pad(w, (0, pad))
    return w.reshape(out, -1, group)


def find_params(
    wg: Tensor,
    scheme: QuantScheme,
    global_scale: Tensor | None = None,
    clip: Tensor | float | None = None,
    mx_rule: str = "floor",
) -> QParams:
    """Parameters for grouped weights ``wg`` [out, G, g].

    ``clip`` (a ratio in (0, 1], scalar or [out, G]) shrinks each group's range before the scale
    is taken (AWQ's clipping search). ``global_scale`` is NVFP4's per-tensor scale (required).
    """
    wg = wg.float()
    c = 1.0 if clip is None else clip
    if isinstance(c, Tensor):
        c = c.to(wg.device).float()
    if scheme.format == "nvfp4":
        if global_scale is None:
            raise ValueError("nvfp4 needs the tensor's global scale")
        gs = global_scale.to(wg.device).float()
        bits = nvfp4_block_scales(wg.abs().amax(-1) * c, gs)
        return QParams(bits, None, scale_values(scheme, bits, gs), 0.0, gs)
    if scheme.format == "mxfp4":
        bits = mxfp4_block_scales(wg.abs().amax(-1) * c, mx_rule)
        return QParams(bits, None, scale_values(scheme, bits), 0.0)
    qmax = 2**scheme.bits - 1
    if scheme.symmetric:
        amax = wg.abs().amax(-1) * c
        scale = _stored_scale(amax / (2 ** (scheme.bits - 1) - 1), scheme)
        zero = torch.full_like(scale, float(2 ** (scheme.bits - 1)))
        return QParams(scale, None, scale, zero)
    lo = wg.amin(-1).clamp(max=0) * c
    hi = wg.amax(-1).clamp(min=0) * c
    scale = _stored_scale((hi - lo) / qmax, scheme)
    zp = torch.round(-lo / scale).clamp(0, qmax)
    return QParams(scale, zp.to(torch.uint8), scale, zp)


def _stored_scale(scale: Tensor, scheme: QuantScheme) -> Tensor:
    """The scale as the scheme stores it, as float32: an all-zero group gets 1 (any scale codes
    zeros exactly), then rounding to the scheme's dtype, before any code is chosen against it."""
    return scheme.round_scales(torch.where(scale > 0, scale, torch.ones_like(scale)))


def encode(w: Tensor, scale: Tensor, zero: Tensor | float, scheme: QuantScheme) -> Tensor:
    """Codes (uint8) of ``w`` under per-element (broadcastable) ``scale`` and ``zero``."""
    w = w.float()
    if scheme.format == "int":
        q = torch.round(w / scale) + zero  # torch.round: half to even
        return q.clamp(0, 2**scheme.bits - 1).to(torch.uint8)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    codes = e2m1_encode(w / safe)
    return torch.where(scale > 0, codes, torch.zeros_like(codes))


def decode(codes: Tensor, scale: Tensor, zero: Tensor | float, scheme: QuantScheme) -> Tensor:
    """The values of codes under the same parameters (what :func:`qtensor.dequantize` computes)."""
    return (code_values(codes, scheme) - zero) * scale


def tensor_global_scale(w: Tensor, scheme: QuantScheme) -> Tensor | None:
    return nvfp4_tensor_scale(w.abs().amax()) if scheme.format == "nvfp4" else None


def quantize_with_params(w: Tensor, scheme: QuantScheme, p: QParams) -> Tensor:
    """Codes [out, in] of ``w`` under group parameters ``p``."""
    out, n = w.shape
    g = scheme.group_len(n)
    wg = grouped(w.float(), g)
    zero = p.zero[..., None] if isinstance(p.zero, Tensor) else p.zero
    codes = encode(wg, p.scale[..., None], zero, scheme)
    return codes.reshape(out, -1)[:, :n].contiguous()


def fake_quantize(
    weight: Tensor,
    scheme: QuantScheme,
    clip: Tensor | float | None = None,
    global_scale: Tensor | None = None,
    mx_rule: str = "floor",
) -> Tensor:
    """``dequantize(rtn(weight, ...))`` computed where ``weight`` lives (no QuantizedWeight made).

    For searches that try many candidates (AWQ); the arithmetic is :func:`qtensor.dequantize`'s.
    """
    w = weight.detach().float()
    out, n = w.shape
    g = scheme.group_len(n)
    gs = global_scale if global_scale is not None else tensor_global_scale(w, scheme)
    p = find_params(grouped(w, g), scheme, gs, clip, mx_rule)
    codes = grouped(quantize_with_params(w, scheme, p), g)
    zero = p.zero[..., None] if isinstance(p.zero, Tensor) else p.zero
    return decode(codes, p.scale[..., None], zero, scheme).reshape(out, -1)[:, :n]


def rtn(
    weight: Tensor,
    scheme: QuantScheme,
    clip: Tensor | float | None = None,
    global_scale: Tensor | None = None,
    mx_rule: str = "floor",
) -> QuantizedWeight:
    """Round-to-nearest quantization of a Linear weight [out, in]."""
    w = weight.detach().float()
    out, n = w.shape
    gs = global_scale if global_scale is not None else tensor_global_scale(w, scheme)
    p = find_params(grouped(w, scheme.group_len(n)), scheme, gs, clip, mx_rule)
    codes = quantize_with_params(w, scheme, p)
    return QuantizedWeight(
        codes=codes.cpu(),
        scales=p.scales.cpu(),
        zero_points=None if p.zero_points is None else p.zero_points.cpu(),
        scheme=scheme,
        shape=(out, n),
        global_scale=None if gs is None else gs.cpu(),
    )


@register
class RoundToNearest(Algorithm):
    """The scales come from the weight alone, so it needs no calibration and any table can take it."""

    name = "rtn"
    needs_stats = False
    quantizes_tables = True

    def quantize(self, weight, scheme, stats, device):
        return rtn(weight, scheme)
