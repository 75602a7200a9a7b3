"""The torch reference session for Qwen3-ASR (float, or fake-quant when Linears are QuantLinear).

The transcriber and the logit rules live in :mod:`.transcribe` (torch-free, shared with the
onnxruntime runner); they are imported here too for the callers that know them here.
"""

from __future__ import annotations

import numpy as np
import torch

from .model import Qwen3ASR
from .transcribe import (  # noqa: F401
    EngineTranscriber,
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


def open_transcriber(ckpt, spec: str) -> EngineTranscriber:
    """The family's role for asrquant.engines: the checkpoint's model behind the engine interface."""
    transcriber = Qwen3ASRTranscriber(Qwen3ASRTorchSession(ckpt.model), ckpt.tokenizer(), ckpt.dims.n_window,
                                      ckpt.dims.n_mels)
    return EngineTranscriber(transcriber, spec)
