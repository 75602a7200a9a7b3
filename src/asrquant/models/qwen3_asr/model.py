"""A compact Qwen3-ASR written for export.

The network in one file, written from the published architecture (Qwen3-ASR technical report,
the checkpoints' config.json) and checked number for number against the reference code of the
``qwen-asr`` package (tests/models/qwen3_asr/test_reference_parity.py): a dimensions dataclass, plain modules
(every projection an ``nn.Linear``, so the quantizer can replace it), and the decoder's KV cache
passed in and out explicitly so the same code traces to an encoder graph, a decoder-prefill
graph (audio embeddings scattered in the graph) and a decoder-step graph.

Module names follow the Hugging Face checkpoint with its ``thinker.`` prefix removed:
``audio_tower.conv2d1`` ... ``audio_tower.layers.N.self_attn.q_proj`` ... ``audio_tower.proj2``,
``model.embed_tokens``, ``model.layers.N.self_attn.{q,k,v,o}_proj``, ``model.layers.N.mlp.
{gate,up,down}_proj``, ``model.norm``, ``lm_head``.

Audio encoder (what the reference does, in the order it does it):
    * the log-mel [n_mels, T] is cut into chunks of ``2 * n_window`` frames (100); the last
      chunk is zero-padded to 100 frames when there is more than one chunk, and left at its own
      length when the whole clip is shorter than one chunk;
    * each chunk goes through three stride-2 3x3 Conv2d + GELU on its own (100 frames -> 13
      tokens), then ``conv_out`` (no bias) on the flattened channels x frequency;
    * the sinusoidal position embedding is added PER CHUNK (positions 0..12 in every chunk);
    * the valid tokens of all chunks (the padded tail's extra tokens dropped) form one
      sequence; self-attention is windowed: blocks of ``tokens_per_chunk * (n_window_infer //
      (2 * n_window))`` = 13 * 8 = 104 consecutive tokens (8 s of audio) attend only within
      themselves;
    * ln_post, proj1, GELU, proj2 -> [n_tokens, output_dim] (the decoder's hidden size).
  Here the chunks are batched as [n_chunks, n_mels, W] with n_chunks padded up to a whole number
  of windows with all-zero chunks; attention runs per window [n_windows, 104, d] with the
  padded keys masked, and the first ``n_tokens`` rows of the output are the clip's tokens.

Decoder: Qwen3 (GQA, RMSNorm, per-head q/k RMSNorm before the rotary embedding, SwiGLU).
The reference names its rotary embedding "interleaved MRoPE" (mrope_section [24, 20, 20]) but
an audio-only prompt gives all three position axes the same index, so it is exactly the plain
rotate-half (NeoX) RoPE with position = token index; that is what is implemented.

Cache layout (float32):
    past_k, past_v : [n_layer, batch, n_kv_heads, n_past, head_dim]   keys after q/k-norm and RoPE
The decoder returns only the keys/values of the tokens it was given (``new_k``/``new_v``,
[n_layer, batch, n_kv_heads, t, head_dim]); the caller appends them on axis 3. Rotary positions
are ``position_offset + arange(t)``; ``position_offset`` defaults to n_past.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .detect import FAMILY

# ---------------------------------------------------------------------------------------------
# Dimensions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Qwen3ASRDims:
    # audio encoder (thinker_config.audio_config)
    n_mels: int = 128
    audio_d_model: int = 1024
    audio_layers: int = 24
    audio_heads: int = 16
    audio_ffn_dim: int = 4096
    audio_output_dim: int = 2048
    downsample_hidden_size: int = 480
    n_window: int = 50
    n_window_infer: int = 800
    max_source_positions: int = 1500
    # text decoder (thinker_config.text_config)
    vocab_size: int = 151936
    hidden_size: int = 2048
    intermediate_size: int = 6144
    n_layers: int = 28
    n_heads: int = 16
    n_kv_heads: int = 8
    head_dim: int = 128
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1000000.0
    tie_word_embeddings: bool = True
    max_position_embeddings: int = 65536
    # prompt tokens (thinker_config)
    audio_token_id: int = 151676
    audio_start_token_id: int = 151669
    audio_end_token_id: int = 151670

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Qwen3ASRDims":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    # -- derived sizes ------------------------------------------------------------------------

    @property
    def chunk_frames(self) -> int:
        """Mel frames per convolution chunk (100)."""
        return 2 * self.n_window

    @property
    def chunks_per_window(self) -> int:
        """Chunks per attention window (8)."""
        return self.n_window_infer // self.chunk_frames

    @property
    def tokens_per_chunk(self) -> int:
        """Encoder tokens of one full chunk (13)."""
        return conv_out_length(self.chunk_frames)

    @property
    def window_tokens(self) -> int:
        """Tokens per encoder attention window (104)."""
        return self.tokens_per_chunk * self.chunks_per_window

    def n_audio_tokens(self, n_frames: int) -> int:
        """Encoder tokens (= <|audio_pad|> placeholders) for a log-mel of ``n_frames`` frames."""
        full, tail = divmod(int(n_frames), self.chunk_frames)
        return full * self.tokens_per_chunk + conv_out_length(tail)

    # -- the published config.json ------------------------------------------------------------

    @classmethod
    def from_config(cls, config: dict) -> "Qwen3ASRDims":
        """Dims from a Qwen3-ASR config.json (``thinker_config.audio_config`` / ``text_config``).

        Raises ValueError naming the missing or unsupported key.
        """
        thinker = config.get("thinker_config", config)
        if not isinstance(thinker, dict):
            raise ValueError("'thinker_config' is not an object")
        audio, text = thinker.get("audio_config"), thinker.get("text_config")
        if not isinstance(audio, dict):
            raise ValueError("no 'thinker_config.audio_config' object")
        if not isinstance(text, dict):
            raise ValueError("no 'thinker_config.text_config' object")

        def need(section: dict, where: str, key: str):
            if key not in section:
                raise ValueError(f"missing '{where}.{key}'")
            return section[key]

        a, t = "thinker_config.audio_config", "thinker_config.text_config"
        act = audio.get("activation_function", "gelu")
        if act != "gelu":
            raise ValueError(f"'{a}.activation_function' = {act!r}: only 'gelu' is supported")
        if text.get("hidden_act", "silu") != "silu":
            raise ValueError(f"'{t}.hidden_act' = {text['hidden_act']!r}: only 'silu' is supported")
        if text.get("attention_bias", False):
            raise ValueError(f"'{t}.attention_bias' = true is not supported")
        if audio.get("scale_embedding", False):
            raise ValueError(f"'{a}.scale_embedding' = true is not supported")
        rope = text.get("rope_scaling") or {}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type != "default":
            raise ValueError(f"'{t}.rope_scaling.rope_type' = {rope_type!r}: only 'default' is supported")
        n_heads = int(need(text, t, "num_attention_heads"))
        hidden = int(need(text, t, "hidden_size"))
        dims = cls(
            n_mels=int(audio.get("num_mel_bins", 128)),
            audio_d_model=int(need(audio, a, "d_model")),
            audio_layers=int(need(audio, a, "encoder_layers")),
            audio_heads=int(need(audio, a, "encoder_attention_heads")),
            audio_ffn_dim=int(need(audio, a, "encoder_ffn_dim")),
            audio_output_dim=int(need(audio, a, "output_dim")),
            downsample_hidden_size=int(audio.get("downsample_hidden_size", 480)),
            n_window=int(audio.get("n_window", 100)),
            n_window_infer=int(audio.get("n_window_infer", 400)),
            max_source_positions=int(audio.get("max_source_positions", 1500)),
            vocab_size=int(need(text, t, "vocab_size")),
            hidden_size=hidden,
            intermediate_size=int(need(text, t, "intermediate_size")),
            n_layers=int(need(text, t, "num_hidden_layers")),
            n_heads=n_heads,
            n_kv_heads=int(text.get("num_key_value_heads") or n_heads),
            head_dim=int(text.get("head_dim") or hidden // n_heads),
            rms_norm_eps=float(text.get("rms_norm_eps", 1e-6)),
            rope_theta=float(text.get("rope_theta", 5000000.0)),
            tie_word_embeddings=bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False))),
            max_position_embeddings=int(text.get("max_position_embeddings", 128000)),
            audio_token_id=int(thinker.get("audio_token_id", 151646)),
            audio_start_token_id=int(thinker.get("audio_start_token_id", 151647)),
            audio_end_token_id=int(thinker.get("audio_end_token_id", 151670)),
        )
        dims.validate()
        return dims

    def validate(self) -> None:
        if self.audio_d_model % self.audio_heads:
            raise ValueError(f"audio d_model {self.audio_d_model} is not a multiple of {self.audio_heads} heads")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"{self.n_heads} attention heads are not a multiple of {self.n_kv_heads} kv heads")
        if self.chunks_per_window < 1:
            raise ValueError(
                f"n_window_infer {self.n_window_infer} is smaller than a chunk ({self.chunk_frames} frames)"
            )
        if self.audio_output_dim != self.hidden_size:
            raise ValueError(f"audio output_dim {self.audio_output_dim} != text hidden_size {self.hidden_size}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} is odd")

    def to_config(self) -> dict:
        """A config.json in the published layout (what Qwen/Qwen3-ASR-* ship), for these dims."""
        return {
            "architectures": ["Qwen3ASRForConditionalGeneration"],
            "model_type": "qwen3_asr",
            "thinker_config": {
                "model_type": "qwen3_asr_thinker",
                "audio_token_id": self.audio_token_id,
                "audio_start_token_id": self.audio_start_token_id,
                "audio_end_token_id": self.audio_end_token_id,
                "user_token_id": 872,
                "initializer_range": 0.02,
                "dtype": "bfloat16",
                "audio_config": {
                    "model_type": "qwen3_asr_audio_encoder",
                    "activation_dropout": 0,
                    "activation_function": "gelu",
                    "attention_dropout": 0,
                    "conv_chunksize": 500,
                    "d_model": self.audio_d_model,
                    "downsample_hidden_size": self.downsample_hidden_size,
                    "dropout": 0,
                    "encoder_attention_heads": self.audio_heads,
                    "encoder_ffn_dim": self.audio_ffn_dim,
                    "encoder_layers": self.audio_layers,
                    "initializer_range": 0.02,
                    "max_source_positions": self.max_source_positions,
                    "n_window": self.n_window,
                    "n_window_infer": self.n_window_infer,
                    "num_mel_bins": self.n_mels,
                    "output_dim": self.audio_output_dim,
                    "scale_embedding": False,
                },
                "text_config": {
                    "model_type": "qwen3_asr_text",
                    "attention_bias": False,
                    "attention_dropout": 0.0,
                    "head_dim": self.head_dim,
                    "hidden_act": "silu",
                    "hidden_size": self.hidden_size,
                    "initializer_range": 0.02,
                    "intermediate_size": self.intermediate_size,
                    "max_position_embeddings": self.max_position_embeddings,
                    "num_attention_heads": self.n_heads,
                    "num_hidden_layers": self.n_layers,
                    "num_key_value_heads": self.n_kv_heads,
                    "rms_norm_eps": self.rms_norm_eps,
                    "rope_scaling": {
                        "interleaved": True,
                        "mrope_interleaved": True,
                        "mrope_section": [24, 20, 20],
                        "rope_type": "default",
                        "type": "default",
                    },
                    "rope_theta": self.rope_theta,
                    "tie_word_embeddings": self.tie_word_embeddings,
                    "use_cache": True,
                    "vocab_size": self.vocab_size,
                },
            },
            "support_languages": [],
            "transformers_version": "4.57.6",
        }


def conv_out_length(n_frames: int) -> int:
    """Frames left after the three stride-2, kernel-3, padding-1 convolutions (100 -> 13)."""
    n = int(n_frames)
    for _ in range(3):
        n = (n - 1) // 2 + 1 if n > 0 else 0
    return n


# ---------------------------------------------------------------------------------------------
# Audio encoder
# ---------------------------------------------------------------------------------------------


def chunk_positions(length: int, channels: int, max_timescale: float = 10000.0) -> Tensor:
    """The sinusoidal embedding added to every chunk's tokens, computed in float32 as the
    reference computes it."""
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float32))
    scaled = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)


class AudioAttention(nn.Module):
    def __init__(self, d: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """x [n_windows, L, d], mask additive [n_windows, 1, 1, L] (0 or very negative)."""
        b, n, d = x.shape
        h = self.n_head
        q = self.q_proj(x).view(b, n, h, d // h).transpose(1, 2)
        k = self.k_proj(x).view(b, n, h, d // h).transpose(1, 2)
        v = self.v_proj(x).view(b, n, h, d // h).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(o.transpose(1, 2).reshape(b, n, d))


class AudioEncoderLayer(nn.Module):
    def __init__(self, d: int, n_head: int, ffn: int):
        super().__init__()
        self.self_attn = AudioAttention(d, n_head)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, ffn)
        self.fc2 = nn.Linear(ffn, d)
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x), mask)
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class AudioEncoder(nn.Module):
    """``thinker.audio_tower``: mel chunks -> audio embeddings in the decoder's hidden size.

    The pieces are separate methods so a calibration adapter can run it block by block:
    ``embed`` (convolutions + positions, windowed) -> ``layers[i](x, mask)`` -> ``head``.
    """

    def __init__(self, dims: Qwen3ASRDims):
        super().__init__()
        self.dims = dims
        d, c = dims.audio_d_model, dims.downsample_hidden_size
        self.conv2d1 = nn.Conv2d(1, c, 3, 2, padding=1)
        self.conv2d2 = nn.Conv2d(c, c, 3, 2, padding=1)
        self.conv2d3 = nn.Conv2d(c, c, 3, 2, padding=1)
        self.conv_out = nn.Linear(c * conv_out_length(dims.n_mels), d, bias=False)
        self.register_buffer(
            "positional_embedding", chunk_positions(dims.max_source_positions, d), persistent=False
        )
        self.layers = nn.ModuleList(
            AudioEncoderLayer(d, dims.audio_heads, dims.audio_ffn_dim) for _ in range(dims.audio_layers)
        )
        self.ln_post = nn.LayerNorm(d)
        self.proj1 = nn.Linear(d, d)
        self.proj2 = nn.Linear(d, dims.audio_output_dim)

    def embed(self, chunks: Tensor, n_tokens: Tensor | int) -> tuple[Tensor, Tensor]:
        """chunks [n_chunks, n_mels, W] (n_chunks a multiple of chunks_per_window) ->
        (x [n_windows, window, d], additive key mask [n_windows, 1, 1, window])."""
        x = F.gelu(self.conv2d1(chunks.unsqueeze(1)))
        x = F.gelu(self.conv2d2(x))
        x = F.gelu(self.conv2d3(x))  # [n_chunks, c, f, t]
        n, c, f, t = x.shape
        x = self.conv_out(x.permute(0, 3, 1, 2).reshape(n, t, c * f))
        x = x + self.positional_embedding[:t]  # positions restart in every chunk
        per_window = self.dims.chunks_per_window
        x = x.reshape(n // per_window, per_window * t, x.shape[-1])
        # A token is a key only if it is one of the clip's first n_tokens (the padding is all at
        # the end: the zero-padded tail of the last chunk, then whole zero chunks).
        index = torch.arange(n * t, device=x.device).reshape(n // per_window, 1, 1, per_window * t)
        n_tokens = torch.as_tensor(n_tokens, device=x.device)
        mask = torch.where(index < n_tokens, 0.0, torch.finfo(x.dtype).min).to(x.dtype)
        return x, mask

    def head(self, x: Tensor) -> Tensor:
        """[n_windows, window, d] after the layers -> [n_windows * window, output_dim]."""
        x = x.reshape(-1, x.shape[-1])
        return self.proj2(F.gelu(self.proj1(self.ln_post(x))))

    def forward(self, chunks: Tensor, n_tokens: Tensor | int) -> Tensor:
        """chunks [n_chunks, n_mels, W] -> [n_chunks * tokens_per_chunk(W), output_dim]; the first
        ``n_tokens`` rows are the clip's audio embeddings, the rest padding."""
        x, mask = self.embed(chunks, n_tokens)
        for layer in self.layers:
            x = layer(x, mask)
        return self.head(x)


def chunk_mel(mel: Tensor, dims: Qwen3ASRDims) -> tuple[Tensor, int]:
    """mel [n_mels, T] -> (chunks [n_chunks, n_mels, W], n_tokens) as the encoder wants them.

    W is one chunk (100 frames), or T itself when the clip is shorter than one chunk (the
    reference does not pad a lone short chunk). n_chunks is rounded up to whole attention
    windows with all-zero chunks; their tokens are masked and cut off.
    """
    n_mels, n_frames = mel.shape
    if n_frames < 1:
        raise ValueError("empty log-mel")
    width = min(dims.chunk_frames, n_frames)
    n_chunks = -(-n_frames // width)
    n_chunks = -(-n_chunks // dims.chunks_per_window) * dims.chunks_per_window
    padded = F.pad(mel, (0, n_chunks * width - n_frames))
    chunks = padded.reshape(n_mels, n_chunks, width).transpose(0, 1)
    return chunks.contiguous(), dims.n_audio_tokens(n_frames)


# ---------------------------------------------------------------------------------------------
# Text decoder
# ---------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, n: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, dims: Qwen3ASRDims):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = dims.n_heads, dims.n_kv_heads, dims.head_dim
        h = dims.hidden_size
        self.q_proj = nn.Linear(h, dims.n_heads * dims.head_dim, bias=False)
        self.k_proj = nn.Linear(h, dims.n_kv_heads * dims.head_dim, bias=False)
        self.v_proj = nn.Linear(h, dims.n_kv_heads * dims.head_dim, bias=False)
        self.o_proj = nn.Linear(dims.n_heads * dims.head_dim, h, bias=False)
        self.q_norm = RMSNorm(dims.head_dim, dims.rms_norm_eps)
        self.k_norm = RMSNorm(dims.head_dim, dims.rms_norm_eps)

    def forward(self, x, cos, sin, past_k, past_v, mask):
        """x [b, t, h]; cos/sin [t, head_dim]; past [b, kv, n_past, hd]; mask bool [t, n_past + t]
        or None -> (out [b, t, h], new_k, new_v [b, kv, t, hd])."""
        b, t, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(b, t, self.n_heads, self.head_dim)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim)).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        keys = torch.cat([past_k, k], dim=2)
        values = torch.cat([past_v, v], dim=2)
        rep = self.n_heads // self.n_kv_heads
        if rep > 1:  # query head i reads kv head i // rep
            n = keys.shape[2]
            keys = (keys[:, :, None].expand(b, self.n_kv_heads, rep, n, self.head_dim)
                    .reshape(b, self.n_heads, n, self.head_dim))
            values = (values[:, :, None].expand(b, self.n_kv_heads, rep, n, self.head_dim)
                      .reshape(b, self.n_heads, n, self.head_dim))
        o = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        return self.o_proj(o.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)), k, v


class MLP(nn.Module):
    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, dims: Qwen3ASRDims):
        super().__init__()
        self.self_attn = Attention(dims)
        self.mlp = MLP(dims.hidden_size, dims.intermediate_size)
        self.input_layernorm = RMSNorm(dims.hidden_size, dims.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(dims.hidden_size, dims.rms_norm_eps)

    def forward(self, x, cos, sin, past_k, past_v, mask):
        h, k, v = self.self_attn(self.input_layernorm(x), cos, sin, past_k, past_v, mask)
        x = x + h
        return x + self.mlp(self.post_attention_layernorm(x)), k, v


class TextModel(nn.Module):
    """``thinker.model``: token embedding, decoder layers, final norm."""

    def __init__(self, dims: Qwen3ASRDims):
        super().__init__()
        self.dims = dims
        self.embed_tokens = nn.Embedding(dims.vocab_size, dims.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(dims) for _ in range(dims.n_layers))
        self.norm = RMSNorm(dims.hidden_size, dims.rms_norm_eps)
        inv_freq = 1.0 / (
            dims.rope_theta ** (torch.arange(0, dims.head_dim, 2, dtype=torch.int64).float() / dims.head_dim)
        )
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def rotary(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """positions [t] (int) -> cos, sin [t, head_dim] (rotate-half layout)."""
        freqs = positions.float()[:, None] * self.inv_freq[None, :]
        emb = torch.cat([freqs, freqs], dim=-1)
        return emb.cos(), emb.sin()

    @staticmethod
    def causal_mask(t: int, n_past: int, device) -> Tensor | None:
        """Token i (absolute position n_past + i) sees every cached key and new keys up to itself."""
        if t == 1:
            return None
        return torch.ones(t, n_past + t, dtype=torch.bool, device=device).tril(n_past)


# ---------------------------------------------------------------------------------------------
# The whole model
# ---------------------------------------------------------------------------------------------


class Qwen3ASR(nn.Module):
    """``thinker`` of Qwen3ASRForConditionalGeneration: audio_tower + model + lm_head."""

    family = FAMILY  # its folder in asrquant.families

    def __init__(self, dims: Qwen3ASRDims):
        super().__init__()
        dims.validate()
        self.dims = dims
        self.audio_tower = AudioEncoder(dims)
        self.model = TextModel(dims)
        self.lm_head = nn.Linear(dims.hidden_size, dims.vocab_size, bias=False)
        if dims.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def init_buffers(self) -> "Qwen3ASR":
        """(Re)compute the fixed, non-persistent tables (a model built on the meta device and
        then given its weights with load_state_dict(assign=True) needs this)."""
        d = self.dims
        self.audio_tower.positional_embedding = chunk_positions(d.max_source_positions, d.audio_d_model)
        self.model.inv_freq = 1.0 / (
            d.rope_theta ** (torch.arange(0, d.head_dim, 2, dtype=torch.int64).float() / d.head_dim)
        )
        return self

    # -- encoder --------------------------------------------------------------------------------

    def encode(self, mel: Tensor) -> Tensor:
        """mel [n_mels, T] -> audio embeddings [n_audio_tokens(T), hidden_size]."""
        chunks, n_tokens = chunk_mel(mel, self.dims)
        return self.audio_tower(chunks, n_tokens)[:n_tokens]

    # -- decoder --------------------------------------------------------------------------------

    def decode_embeds(self, x: Tensor, past_k: Tensor, past_v: Tensor, position_offset: Tensor | int | None = None):
        """x [b, t, hidden] after n_past cached positions -> (logits [b, t, V], new_k, new_v)."""
        t, n_past = x.shape[1], past_k.shape[3]
        offset = n_past if position_offset is None else position_offset
        positions = torch.as_tensor(offset, device=x.device).reshape(-1)[:1] + torch.arange(t, device=x.device)
        cos, sin = self.model.rotary(positions)
        mask = self.model.causal_mask(t, n_past, x.device)
        new_k, new_v = [], []
        for i, layer in enumerate(self.model.layers):
            x, k, v = layer(x, cos, sin, past_k[i], past_v[i], mask)
            new_k.append(k)
            new_v.append(v)
        logits = self.lm_head(self.model.norm(x))
        return logits, torch.stack(new_k), torch.stack(new_v)

    def decode_tokens(self, tokens: Tensor, past_k: Tensor, past_v: Tensor,
                      position_offset: Tensor | int | None = None):
        """tokens [b, t] -> (logits [b, t, V], new_k, new_v)."""
        return self.decode_embeds(self.model.embed_tokens(tokens), past_k, past_v, position_offset)

    def prompt_embeds(self, input_ids: Tensor, audio_embeds: Tensor) -> Tensor:
        """Token embeddings of input_ids [b, t] with the <|audio_pad|> positions replaced, in
        order, by audio_embeds [n_audio, hidden] (the same audio for every row). Written with
        cumsum/gather/where so it traces into the prefill graph."""
        x = self.model.embed_tokens(input_ids)
        is_audio = input_ids == self.dims.audio_token_id
        index = (torch.cumsum(is_audio.to(torch.int64), dim=1) - 1).clamp(min=0)
        index = index.clamp(max=audio_embeds.shape[0] - 1)
        return torch.where(is_audio[..., None], audio_embeds[index].to(x.dtype), x)

    def prefill(self, input_ids: Tensor, audio_embeds: Tensor, past_k: Tensor | None = None,
                past_v: Tensor | None = None):
        """The prompt with its audio -> (logits [b, t, V], k, v)."""
        if past_k is None or past_v is None:
            past_k, past_v = self.empty_cache(input_ids.shape[0], input_ids.device)
        return self.decode_embeds(self.prompt_embeds(input_ids, audio_embeds), past_k, past_v)

    def empty_cache(self, batch: int, device=None) -> tuple[Tensor, Tensor]:
        d = self.dims
        shape = (d.n_layers, batch, d.n_kv_heads, 0, d.head_dim)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    # -- conveniences (parity tests, calibration) ------------------------------------------------

    @torch.no_grad()
    def teacher_forced_logits(self, mel: Tensor, input_ids: Tensor) -> Tensor:
        """Logits of a whole sequence (prompt with audio placeholders + continuation) [b, t, V]."""
        return self.prefill(input_ids, self.encode(mel))[0]

    @torch.no_grad()
    def greedy(self, mel: Tensor, prompt_ids: list[int], eos_ids: tuple[int, ...] | list[int],
               max_new_tokens: int = 64) -> list[int]:
        """Greedy decoding with the KV cache; returns the generated ids (the end token included
        when it was reached)."""
        ids = torch.tensor([prompt_ids], dtype=torch.int64, device=mel.device)
        logits, k, v = self.prefill(ids, self.encode(mel))
        out: list[int] = []
        for _ in range(max_new_tokens):
            tok = int(logits[0, -1].argmax())
            out.append(tok)
            if tok in eos_ids:
                break
            logits, nk, nv = self.decode_tokens(torch.tensor([[tok]], device=mel.device), k, v)
            k, v = torch.cat([k, nk], 3), torch.cat([v, nv], 3)
        return out
