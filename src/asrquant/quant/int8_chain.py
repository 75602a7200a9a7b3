"""The numbers of the int8 chain that ``asrquant export --compute int8`` runs for the encoder's
Linears (``export/onnx/int8_matmul.py``): the input rounded to int8 per row (symmetric, one scale
per row from its largest magnitude) and the weight requantized to int8 per output channel.

Here, in quant/, because three places compute them: the exporter writes the int8 weights with
:func:`requantize_per_channel`; its cost measurement and smoothing emulate the chain in torch
(``export/onnx/int8_choice.py``, ``smoothing.py``); and a refinement trained through the chain
(``dwq``'s ``activations = "int8"``, ``quant/refine.py``) computes it at every step. export/
imports quant/, never the reverse, so the one definition lives on this side.

Straight-through versions (:func:`rows_int8_ste`, :func:`channels_int8_ste`): the rounded values
forward, the identity backward, so a refinement's gradient reaches the weights the chain rounds.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .qtensor import QuantizedWeight

INT8_MAX = 127


def _tiny() -> float:
    return torch.finfo(torch.float32).tiny


def requantize_per_channel(w_kn: Tensor) -> tuple[Tensor, Tensor]:
    """int8 codes [K, N] and float32 scales [N] of a weight [K, N] (``x @ w``): ``s = max|w| / 127``
    per column, codes rounded half to even (as numpy and onnxruntime's QuantizeLinear round)."""
    w = w_kn.detach().float()
    scale = w.abs().amax(0).clamp(min=_tiny()) / INT8_MAX
    q = torch.clamp(torch.round(w / scale), -INT8_MAX, INT8_MAX).to(torch.int8)
    return q, scale


def channels_int8(w_kn: Tensor) -> Tensor:
    """The chain's weight [K, N], dequantized: :func:`requantize_per_channel`'s codes times scales."""
    q, scale = requantize_per_channel(w_kn)
    return q.float() * scale


def rows_int8(x: Tensor) -> Tensor:
    """The chain's activations, dequantized: symmetric, one scale per row (last dimension)."""
    s = x.abs().amax(-1, keepdim=True).clamp(min=_tiny()) / INT8_MAX
    return torch.clamp(torch.round(x / s), -INT8_MAX, INT8_MAX) * s


def rows_int8_ste(x: Tensor) -> Tensor:
    """:func:`rows_int8` forward, identity backward."""
    return x + (rows_int8(x.detach()) - x).detach()


def channels_int8_ste(w_out_in: Tensor) -> Tensor:
    """A Linear's weight [out, in] as the chain multiplies it (requantized per output channel),
    identity backward."""
    return w_out_in + (channels_int8(w_out_in.detach().t()).t() - w_out_in).detach()


def keeps_own_codes(qw: QuantizedWeight | None) -> bool:
    """Whether the chain multiplies this quantized weight's own codes (8 bits, one symmetric scale
    per output channel: already what it would requantize to) instead of requantizing it."""
    s = qw.scheme if qw is not None else None
    return s is not None and s.format == "int" and s.bits == 8 and s.symmetric and qw.group_len == qw.shape[1]
