"""The torch reference session for Qwen3-ASR (float, or fake-quant when Linears are QuantLinear),
and the engine opener for every torch form of a Qwen3-ASR spec: a checkpoint directory, a
directory saved by ``asrquant quantize``, or ``DIR@RECIPE`` quantized now.

The transcriber and the logit rules live in :mod:`.qwen3_asr_transcribe` (torch-free, shared
with the onnxruntime runner); they are imported here too for the callers that know them here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .model import Qwen3ASR
from .transcribe import (  # noqa: F401
    Qwen3ASREngine,
    Qwen3ASRLogitRules,
    Qwen3ASRTranscriber,
    Qwen3ASRTranscript,
    qwen3_asr_rules,
)


class Qwen3ASRTorchSession:
    """Session over a :class:`Qwen3ASR`; ``enc`` is the clip's audio embeddings [n_audio, hidden]."""

    def __init__(self, model: Qwen3ASR):
        self.model = model.eval()
        self.dims = model.dims
        self.max_positions = model.dims.max_position_embeddings

    @torch.inference_mode()
    def encode(self, mel: np.ndarray) -> torch.Tensor:
        return self.model.encode(torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32)))

    @torch.inference_mode()
    def prefill(self, enc, prompt: np.ndarray, batch: int):
        ids = torch.from_numpy(prompt).unsqueeze(0).expand(batch, -1)
        logits, k, v = self.model.prefill(ids, enc)
        return logits[:, -1].numpy(), (k, v)

    @torch.inference_mode()
    def step(self, tokens: np.ndarray, cache):
        k, v = cache
        logits, nk, nv = self.model.decode_tokens(torch.from_numpy(tokens)[:, None], k, v)
        return logits[:, -1].numpy(), (torch.cat([k, nk], 3), torch.cat([v, nv], 3))

    def reorder(self, cache, rows: np.ndarray):
        idx = torch.from_numpy(rows)
        return tuple(t.index_select(1, idx) for t in cache)


def load_for_torch(spec: str, calib: str | None = None):
    """The checkpoint of a torch spec: saved by ``asrquant quantize``, ``DIR@RECIPE`` quantized
    now (calibrated on ``calib``), or a checkpoint directory as it is."""
    from .load import load_qwen3_asr
    from .saved import (
        FAMILY,
        load_quantized_qwen3_asr,
        quantize_qwen3_asr,
        saved_family,
    )

    if saved_family(Path(spec)) == FAMILY:
        return load_quantized_qwen3_asr(spec).ckpt
    model, sep, recipe = spec.rpartition("@")
    if sep and model and recipe and not Path(spec).exists():
        return quantize_qwen3_asr(model, recipe, calib, progress=False).ckpt
    return load_qwen3_asr(spec)


def open_torch_engine(spec: str, threads: int = 2, calib: str | None = None) -> Qwen3ASREngine:
    torch.set_num_threads(threads)
    ckpt = load_for_torch(spec, calib)
    transcriber = Qwen3ASRTranscriber(Qwen3ASRTorchSession(ckpt.model), ckpt.tokenizer(), ckpt.dims.n_window,
                                      ckpt.dims.n_mels)
    return Qwen3ASREngine(spec, transcriber, ckpt.size_bytes, "asrquant-torch")
