"""Attention as onnxruntime's fused contrib op ``com.microsoft.MultiHeadAttention``, for any family's graphs.

Why: traced attention is a chain of generic ops (MatMul of the scores, Softmax, MatMul of the
probabilities, the head splits' Reshape/Transpose), each writing its [B, H, T, T] or [B, H, T, dh]
result to memory. onnxruntime's CPU kernel for the fused op runs the same math tile by tile
(flash attention: scores of a block of queries never leave the cache) and needs no transposes
around it. The torch side of :class:`MultiHeadAttention` is the same math as the unfused graph, so
tracing, shapes and the fake-quant reference are unchanged; only the exported node differs.
Its numbers are not bit-identical to the unfused chain (other summation order, an online softmax):
the export keeps both (``attention="unfused" | "fused"``), and the tests compare their tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor

DOMAIN = "com.microsoft"
OP = "MultiHeadAttention"
MODES = ("unfused", "fused", "int8")  # int8: traced unfused, then its scores made integer GEMMs (.int8_scores)
CUSTOM_OPSETS = {DOMAIN: 1}  # torch.onnx.export's custom_opsets for graphs with the fused op


def check_mode(attention: str) -> str:
    if attention not in MODES:
        raise ValueError(f"attention must be one of {MODES}, not {attention!r}")
    return attention


def reference_attention(q: Tensor, k: Tensor, v: Tensor, n_head: int) -> Tensor:
    """softmax(q k^T / sqrt(dh)) v over [B, T, D] inputs split into ``n_head`` heads -> [B, T, D]."""
    b, t, d = q.shape
    s = k.shape[1]
    qh = q.reshape(b, t, n_head, -1).transpose(1, 2)
    kh = k.reshape(b, s, n_head, -1).transpose(1, 2)
    vh = v.reshape(b, s, n_head, -1).transpose(1, 2)
    scale = (d // n_head) ** -0.5
    p = torch.matmul(qh * scale, kh.transpose(-1, -2)).softmax(-1)
    return torch.matmul(p, vh).transpose(1, 2).reshape(b, t, d)


class MultiHeadAttention(torch.autograd.Function):
    """Traced as one ``com.microsoft.MultiHeadAttention`` node (no mask, no cache, scale 1/sqrt(dh))."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, n_head: int) -> Tensor:
        return reference_attention(q, k, v, n_head)

    @staticmethod
    def symbolic(g, q, k, v, n_head: int):
        out = g.op(f"{DOMAIN}::{OP}", q, k, v, num_heads_i=int(n_head))
        out.setType(q.type())
        return out


def fused_attention(q: Tensor, k: Tensor, v: Tensor, n_head: int) -> Tensor:
    """[B, T, D] queries, [B, S, D] keys and values -> [B, T, D]; one fused node when exported."""
    return MultiHeadAttention.apply(q, k, v, n_head)
