"""A compact Whisper written for export.

The whole network in one file, after openai/whisper's model.py: a dimensions dataclass, plain
modules, and the self-attention KV cache passed in and out explicitly so that the same code
traces to an encoder graph, a decoder-prefill graph and a decoder-step graph.

Cache layout (all float32, heads merged):
    cross_k, cross_v : [n_layer, batch, n_audio_ctx, n_state]   computed once per clip
    past_k,  past_v  : [n_layer, batch, n_past,      n_state]   grows by one per step
The decoder returns only the keys/values of the tokens it was given (``new_k``/``new_v``); the
caller appends them, so a runtime can write them into a preallocated buffer instead of copying
the whole cache every step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .detect import FAMILY


@dataclass(frozen=True)
class WhisperDims:
    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int

    def to_dict(self) -> dict:
        return asdict(self)


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> Tensor:
    """Whisper's fixed positional embedding of the encoder."""
    log_timescale_increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2, dtype=torch.float64))
    scaled_time = torch.arange(length, dtype=torch.float64)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1).float()


# How a checkpoint holds the sinusoids: as float32 gives them (OpenAI, Hugging Face) or rounded
# once more to float16 (CTranslate2 files). The rounding is part of the model: nearly every entry
# of the table moves (by up to 2.4e-4) between the two, enough to change some greedy transcripts,
# so a saved or exported model must reproduce the one its source had.
SINUSOID_ROUNDINGS = ("float32", "float16")


def sinusoids_rounded(length: int, channels: int, rounding: str) -> Tensor:
    table = sinusoids(length, channels)
    if rounding == "float16":
        return table.half().float()
    if rounding != "float32":
        raise ValueError(f"unknown sinusoid rounding {rounding!r} (expected one of {SINUSOID_ROUNDINGS})")
    return table


def sinusoid_rounding(table: Tensor) -> str | None:
    """The rounding with which ``table`` [n, d] is exactly the formula, or None (trained positions)."""
    if table.dim() != 2 or table.shape[1] % 2 or table.shape[1] < 4:
        return None
    table = table.detach().float().cpu()
    return next((r for r in SINUSOID_ROUNDINGS if torch.equal(table, sinusoids_rounded(*table.shape, r))), None)


class MultiHeadAttention(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        b, t, d = q.shape
        h = self.n_head
        q = q.view(b, t, h, d // h).transpose(1, 2)
        k = k.view(b, k.shape[1], h, d // h).transpose(1, 2)
        v = v.view(b, v.shape[1], h, d // h).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(o.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, n_state: int):
        super().__init__()
        self.fc1 = nn.Linear(n_state, 4 * n_state)
        self.fc2 = nn.Linear(4 * n_state, n_state)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class EncoderBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = nn.LayerNorm(n_state)
        self.mlp = MLP(n_state)
        self.mlp_ln = nn.LayerNorm(n_state)

    def forward(self, x: Tensor) -> Tensor:
        h = self.attn_ln(x)
        x = x + self.attn.attend(self.attn.query(h), self.attn.key(h), self.attn.value(h), None)
        return x + self.mlp(self.mlp_ln(x))

    def forward_at(self, x: Tensor, positions: Tensor) -> Tensor:
        """forward(x)[:, positions], computing only what those rows need (keys and values of every
        frame; queries, projection and MLP of the chosen ones): a refinement's cheap step."""
        h = self.attn_ln(x)
        x = x[:, positions] + self.attn.attend(self.attn.query(h[:, positions]), self.attn.key(h), self.attn.value(h),
                                               None)
        return x + self.mlp(self.mlp_ln(x))


class DecoderBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = nn.LayerNorm(n_state)
        self.cross_attn = MultiHeadAttention(n_state, n_head)
        self.cross_attn_ln = nn.LayerNorm(n_state)
        self.mlp = MLP(n_state)
        self.mlp_ln = nn.LayerNorm(n_state)

    def forward(self, x, past_k, past_v, cross_k, cross_v, mask):
        h = self.attn_ln(x)
        new_k, new_v = self.attn.key(h), self.attn.value(h)
        k = torch.cat([past_k, new_k], dim=1)
        v = torch.cat([past_v, new_v], dim=1)
        x = x + self.attn.attend(self.attn.query(h), k, v, mask)
        h = self.cross_attn_ln(x)
        x = x + self.cross_attn.attend(self.cross_attn.query(h), cross_k, cross_v, None)
        x = x + self.mlp(self.mlp_ln(x))
        return x, new_k, new_v


class AudioEncoder(nn.Module):
    def __init__(self, dims: WhisperDims):
        super().__init__()
        d = dims.n_audio_state
        self.conv1 = nn.Conv1d(dims.n_mels, d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(dims.n_audio_ctx, d), persistent=False)
        self.blocks = nn.ModuleList(EncoderBlock(d, dims.n_audio_head) for _ in range(dims.n_audio_layer))
        self.ln_post = nn.LayerNorm(d)

    def forward(self, mel: Tensor) -> Tensor:
        """mel [batch, n_mels, 2 * n_audio_ctx] -> audio features [batch, n_audio_ctx, n_state]."""
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positional_embedding[: x.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)


class TextDecoder(nn.Module):
    def __init__(self, dims: WhisperDims):
        super().__init__()
        d = dims.n_text_state
        self.token_embedding = nn.Embedding(dims.n_vocab, d)
        self.positional_embedding = nn.Parameter(torch.zeros(dims.n_text_ctx, d))  # learned; loaded from the checkpoint
        self.blocks = nn.ModuleList(DecoderBlock(d, dims.n_text_head) for _ in range(dims.n_text_layer))
        self.ln = nn.LayerNorm(d)

    def cross_kv(self, audio_features: Tensor) -> tuple[Tensor, Tensor]:
        """Cross-attention keys and values of every layer, [n_layer, batch, n_audio_ctx, n_state]."""
        ks = [b.cross_attn.key(audio_features) for b in self.blocks]
        vs = [b.cross_attn.value(audio_features) for b in self.blocks]
        return torch.stack(ks), torch.stack(vs)

    def forward(self, tokens, past_k, past_v, cross_k, cross_v):
        """tokens [batch, t] after n_past cached positions -> (logits [batch, t, n_vocab], new_k, new_v)."""
        t, n_past = tokens.shape[1], past_k.shape[2]
        x = self.token_embedding(tokens) + self.positional_embedding[n_past : n_past + t]
        # Token i (at absolute position n_past + i) sees every cached key and new keys up to itself.
        mask = torch.ones(t, n_past + t, dtype=torch.bool, device=tokens.device).tril(n_past) if t > 1 else None
        new_k, new_v = [], []
        for i, block in enumerate(self.blocks):
            x, k, v = block(x, past_k[i], past_v[i], cross_k[i], cross_v[i], mask)
            new_k.append(k)
            new_v.append(v)
        logits = self.ln(x) @ self.token_embedding.weight.t()
        return logits, torch.stack(new_k), torch.stack(new_v)

    def empty_cache(self, batch: int, device=None) -> tuple[Tensor, Tensor]:
        shape = (len(self.blocks), batch, 0, self.ln.normalized_shape[0])
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)


class Whisper(nn.Module):
    family = FAMILY  # its folder in asrquant.families

    def __init__(self, dims: WhisperDims):
        super().__init__()
        self.dims = dims
        self.encoder = AudioEncoder(dims)
        self.decoder = TextDecoder(dims)

    @torch.no_grad()
    def teacher_forced_logits(self, mel: Tensor, tokens: Tensor) -> Tensor:
        """Logits of a whole token sequence given the audio (parity tests, calibration)."""
        cross_k, cross_v = self.decoder.cross_kv(self.encoder(mel))
        past_k, past_v = self.decoder.empty_cache(tokens.shape[0], tokens.device)
        return self.decoder(tokens, past_k, past_v, cross_k, cross_v)[0]
