"""The torch reference session for Whisper (float, or fake-quant when Linears are QuantLinear)."""

from __future__ import annotations

import numpy as np
import torch

from .load import WhisperCheckpoint
from .model import Whisper
from .tokenizer import WhisperTokenizer
from .transcribe import WhisperGeneration, WhisperTranscriber


class WhisperTorchSession:
    """Runs on the model's device (a refinement's free-running check decodes on CUDA when it trains there)."""

    def __init__(self, model: Whisper):
        self.model = model.eval()
        self.max_positions = model.dims.n_text_ctx
        self.device = next(model.parameters()).device

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(self.device)

    @torch.inference_mode()
    def encode(self, mel: np.ndarray):
        """mel [n_mels, frames] -> cross-attention keys/values [n_layer, 1, n_audio_ctx, n_state]."""
        audio_features = self.model.encoder(self._tensor(mel).unsqueeze(0))
        return self.model.decoder.cross_kv(audio_features)

    @torch.inference_mode()
    def prefill(self, enc, prompt: np.ndarray, batch: int):
        cross_k, cross_v = (t.expand(-1, batch, -1, -1) for t in enc)
        tokens = self._tensor(prompt).unsqueeze(0).expand(batch, -1)
        past_k, past_v = self.model.decoder.empty_cache(batch, self.device)
        logits, k, v = self.model.decoder(tokens, past_k, past_v, cross_k, cross_v)
        return logits[:, -1].float().cpu().numpy(), (k, v, cross_k, cross_v)

    @torch.inference_mode()
    def step(self, tokens: np.ndarray, cache):
        k, v, cross_k, cross_v = cache
        logits, new_k, new_v = self.model.decoder(self._tensor(tokens)[:, None], k, v, cross_k, cross_v)
        cache = torch.cat([k, new_k], 2), torch.cat([v, new_v], 2), cross_k, cross_v
        return logits[:, -1].float().cpu().numpy(), cache

    def reorder(self, cache, rows: np.ndarray):
        k, v, cross_k, cross_v = cache
        idx = self._tensor(rows)
        # Cross-attention rows are copies of one clip's keys: nothing to reorder.
        return k.index_select(1, idx), v.index_select(1, idx), cross_k, cross_v


def open_transcriber(ckpt: WhisperCheckpoint, spec: str = "") -> WhisperTranscriber:
    """The checkpoint's model with its tokenizer and decoding settings (the family's role for
    asrquant.engines; the transcriber already has the engine interface)."""
    tokenizer = WhisperTokenizer(ckpt.tokenizer_json, multilingual=ckpt.multilingual)
    generation = WhisperGeneration(tuple(ckpt.suppress_ids), tuple(ckpt.suppress_ids_begin), ckpt.dims.n_mels)
    return WhisperTranscriber(WhisperTorchSession(ckpt.model), tokenizer, generation)
