"""A small random Qwen3-ASR checkpoint in the published file layout, for the tests.

* config.json as published (``thinker_config.audio_config`` / ``text_config``), small sizes but
  the real chunking (n_window 50, n_window_infer 800), the real vocabulary size (151936) and the
  real special-token ids;
* weights as sharded safetensors (model-0000i-of-0000n.safetensors + model.safetensors.index.json)
  with every tensor named ``thinker.*``;
* tokenizer files as the Qwen checkpoints ship them: vocab.json + merges.txt (a small byte-level
  BPE trained here, padded with filler entries so the added tokens sit at their real ids) and
  tokenizer_config.json with ``added_tokens_decoder``; preprocessor_config.json (Whisper feature
  extractor, 128 bins) and a chat template rendering the published prompt layout, so the
  reference's own processor can load the directory too.

No qwen-asr tokenizer files are on PyPI (the qwen-asr package ships none), hence the small BPE.
Ids that are not documented publicly (151671-151675, 151677-151703) get placeholder names.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from asrquant.models.qwen3_asr.load import write_checkpoint
from asrquant.models.qwen3_asr.model import Qwen3ASR, Qwen3ASRDims

QWEN3_ADDED = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
]  # fmt: skip  ids 151643..151668, as in every Qwen3 tokenizer
FIRST_ADDED = 151643
KNOWN = {151669: "<|audio_start|>", 151670: "<|audio_end|>", 151676: "<|audio_pad|>", 151704: "<asr_text>",
         151705: "<timestamp>"}
NON_SPECIAL = {"<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
               "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
               "<asr_text>", "<timestamp>"}  # fmt: skip

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'audio' -%}{{- '<|audio_start|><|audio_pad|><|audio_end|>' -}}"
    "{%- elif item['type'] == 'text' -%}{{- item['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

CORPUS = """system user assistant language English Chinese German French None
The quick brown fox jumps over the lazy dog. Hello world, this is a test of speech recognition.
the cat sat on the mat and the dog barked at the mailman in the morning light
"""


def small_dims(tie: bool = True, **over) -> Qwen3ASRDims:
    d = dict(
        n_mels=128, audio_d_model=64, audio_layers=2, audio_heads=4, audio_ffn_dim=128,
        audio_output_dim=64, downsample_hidden_size=8, n_window=50, n_window_infer=800,
        vocab_size=151936, hidden_size=64, intermediate_size=128, n_layers=2, n_heads=4,
        n_kv_heads=2, head_dim=16, tie_word_embeddings=tie,
    )  # fmt: skip
    d.update(over)
    return Qwen3ASRDims(**d)


@torch.no_grad()
def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Weights at scales where every part moves the output (fan-in scaled matrices, norms
    near one, small biases) - not the near-zero init that makes logits ties."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            fan_in = p[0].numel()
            scale = 1.0 / fan_in**0.5
            p.copy_(torch.randn(p.shape, generator=g) * scale)
        elif name.endswith("weight"):  # norms
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return model


def random_model(dims: Qwen3ASRDims, seed: int = 0) -> Qwen3ASR:
    return randomize(Qwen3ASR(dims), seed).eval()


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def _train_bpe(n_merges: int = 200) -> tuple[dict[str, int], list[str]]:
    """A deterministic byte-level BPE on CORPUS (pieces split like Qwen2's regex, roughly)."""
    import re

    bmap = _bytes_to_unicode()
    words: dict[tuple, int] = {}
    for piece in re.findall(r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]+|\s+", CORPUS):
        sym = tuple(bmap[b] for b in piece.encode("utf-8"))
        words[sym] = words.get(sym, 0) + 1
    merges = []
    for _ in range(n_merges):
        counts: dict[tuple, int] = {}
        for sym, f in words.items():
            for pair in zip(sym, sym[1:]):
                counts[pair] = counts.get(pair, 0) + f
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        new = {}
        for sym, f in words.items():
            out, i = [], 0
            while i < len(sym):
                if i + 1 < len(sym) and (sym[i], sym[i + 1]) == best:
                    out.append(sym[i] + sym[i + 1])
                    i += 2
                else:
                    out.append(sym[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + f
        words = new
    vocab = {bmap[b]: i for i, b in enumerate(range(256))}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return vocab, [f"{a} {b}" for a, b in merges]


def added_tokens() -> dict[int, str]:
    out = {FIRST_ADDED + i: t for i, t in enumerate(QWEN3_ADDED)}
    for tid in range(FIRST_ADDED + len(QWEN3_ADDED), 151706):
        out[tid] = KNOWN.get(tid, f"<|asr_reserved_{tid}|>")
    return out


def write_tokenizer_files(out: Path) -> None:
    vocab, merges = _train_bpe()
    for i in range(len(vocab), FIRST_ADDED):  # filler entries up to the first added token
        vocab[f"ĉfill{i}"] = i
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    decoder = {
        str(tid): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                   "special": t not in NON_SPECIAL}
        for tid, t in added_tokens().items()
    }  # fmt: skip
    cfg = {
        "add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": decoder,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<|audio_start|>", "<|audio_end|>",
                                      "<|audio_pad|>"],
        "audio_bos_token": "<|audio_start|>", "audio_eos_token": "<|audio_end|>", "audio_token": "<|audio_pad|>",
        "image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
        "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>",
        "bos_token": None, "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>", "errors": "replace",
        "model_max_length": 131072, "pad_token": "<|endoftext|>", "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    }  # fmt: skip
    cfg["extra_special_tokens"] = {k: cfg[k] for k in (
        "audio_bos_token", "audio_eos_token", "audio_token", "image_token", "video_token",
        "vision_bos_token", "vision_eos_token")}  # fmt: skip
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}), encoding="utf-8")
    pre = {
        "chunk_length": 30, "dither": 0.0, "feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 128,
        "hop_length": 160, "n_fft": 400, "n_samples": 480000, "nb_max_frames": 3000, "padding_side": "right",
        "padding_value": 0.0, "processor_class": "Qwen3ASRProcessor", "return_attention_mask": True,
        "sampling_rate": 16000,
    }  # fmt: skip
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2), encoding="utf-8")
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": [151645, 151643], "pad_token_id": 151643}))


def write_random_checkpoint(out: Path, dims: Qwen3ASRDims | None = None, seed: int = 0, shards: int = 3,
                            dtype: torch.dtype = torch.float32) -> tuple[Path, Qwen3ASR]:
    """The whole checkpoint directory; returns it and the model whose weights it holds."""
    dims = dims or small_dims()
    model = random_model(dims, seed)
    write_checkpoint(model, out, shards=shards, dtype=dtype)
    write_tokenizer_files(out)
    return out, model


def tone(seconds: float, seed: int = 0, sr: int = 16000) -> np.ndarray:
    """A deterministic test signal: a few tones and some noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = sum(0.2 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in rng.uniform(100, 3000, 4))
    return (x + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)


def write_clips(directory: Path, name: str, clips: list[tuple[str, float, str, str | None]], seed: int = 0) -> Path:
    """WAV files of :func:`tone` and a manifest.jsonl naming them: clips are (id, seconds, text, lang)."""
    import soundfile as sf

    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / f"{name}.jsonl"
    with open(manifest, "w", encoding="utf-8") as f:
        for i, (cid, seconds, text, lang) in enumerate(clips):
            sf.write(directory / f"{cid}.wav", tone(seconds, seed=seed + i), 16000)
            f.write(json.dumps({"id": cid, "audio": f"{cid}.wav", "text": text, "lang": lang}) + "\n")
    return manifest
