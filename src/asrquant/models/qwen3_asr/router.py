"""Mega-ASR's optional audio-quality router: a small classifier that says whether a clip is
degraded (noise, reverberation, dropouts ...) and so whether Mega-ASR's fine-tuned weights
should be used for it (probability >= threshold, 0.5 by default) rather than the base model's.

Written from Mega-ASR's published description and checkpoint layout
(``audio_quality_router/best_acc_model.safetensors`` with its hyper-parameters as JSON in the
safetensors metadata key ``config`` -> ``model``, or a ``.pt`` dict with ``config`` and
``model_state_dict``). Parameter names match that checkpoint: a two-layer strided Conv1d
front end with batch norm, a sinusoidal position table, one pre-norm transformer encoder layer,
attention pooling and a two-layer classifier. Its input is an 80-bin log-mel (torchaudio's
MelSpectrogram, slaney scale and norm, power 2, centred frames; log10, then (x + 4) / 4: no
Whisper max-8 clamp). Only loading and running it are verified here (no real router weights).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ModelError
from ...features import HOP_LENGTH, N_FFT, mel_filters


def router_log_mel(audio: np.ndarray, n_mels: int = 80) -> Tensor:
    """[1, frames, n_mels] log-mel of mono 16 kHz audio, as the router was trained on."""
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    window = torch.hann_window(N_FFT)
    spec = torch.stft(x, N_FFT, HOP_LENGTH, N_FFT, window, center=True, pad_mode="reflect", return_complex=True)
    power = spec.abs() ** 2  # [n_fft/2 + 1, frames]
    mel = torch.from_numpy(np.asarray(mel_filters(n_mels), dtype=np.float32)) @ power
    log_mel = torch.clamp(mel, min=1e-10).log10()
    return ((log_mel + 4.0) / 4.0).T.unsqueeze(0)


class _Positions(nn.Module):
    def __init__(self, d: int, max_len: int):
        super().__init__()
        pe = torch.zeros(max_len, d)
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        self.register_buffer("pe", pe[None])

    def forward(self, x: Tensor) -> Tensor:
        return x + self.pe[:, : x.shape[1]]


class _Frontend(nn.Module):
    def __init__(self, n_mels: int, d: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(n_mels, d // 2, 3, stride=2, padding=1), nn.BatchNorm1d(d // 2), nn.GELU(), nn.Dropout(0.0),
            nn.Conv1d(d // 2, d, 3, stride=2, padding=1), nn.BatchNorm1d(d), nn.GELU(), nn.Dropout(0.0),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x.transpose(1, 2)).transpose(1, 2)


class _Pooling(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.query = nn.Linear(d, 1)

    def forward(self, x: Tensor) -> Tensor:
        w = F.softmax(self.query(x).squeeze(-1), dim=-1)
        return torch.bmm(w.unsqueeze(1), x).squeeze(1)


class AudioQualityClassifier(nn.Module):
    def __init__(self, n_mels=80, d_model=192, nhead=4, dim_feedforward=512, max_len=3000, num_classes=2, **_):
        super().__init__()
        self.n_mels = n_mels
        self.frontend = _Frontend(n_mels, d_model)
        self.pos_encoder = _Positions(d_model, max_len // 4 + 100)
        layer = nn.TransformerEncoderLayer(
            d_model, nhead, dim_feedforward, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(
            layer, num_layers=1, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )
        self.pooling = _Pooling(d_model)
        self.classifier = nn.Sequential(
            nn.Linear(d_model, d_model // 2), nn.GELU(), nn.Dropout(0.0), nn.Linear(d_model // 2, num_classes)
        )

    def forward(self, mels: Tensor) -> Tensor:
        """mels [b, frames, n_mels] -> logits [b, num_classes] (class 1: degraded)."""
        x = self.pos_encoder(self.frontend(mels))
        return self.classifier(self.pooling(self.transformer(x)))


class AudioQualityRouter:
    def __init__(self, model: AudioQualityClassifier, threshold: float = 0.5, path: Path | None = None):
        self.model = model.eval()
        self.threshold = threshold
        self.path = path

    @torch.no_grad()
    def degraded_probability(self, audio: np.ndarray) -> float:
        logits = self.model(router_log_mel(audio, self.model.n_mels))
        return float(torch.softmax(logits, dim=-1)[0, 1])

    def predict(self, audio: np.ndarray) -> tuple[bool, float]:
        """(use the fine-tuned weights?, probability that the clip is degraded)."""
        p = self.degraded_probability(audio)
        return p >= self.threshold, p


def load_router(path: str | Path, threshold: float = 0.5) -> AudioQualityRouter:
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open
            from safetensors.torch import load_file

            with safe_open(str(path), framework="pt", device="cpu") as f:
                meta = f.metadata() or {}
            config = json.loads(meta.get("config", "{}")).get("model", {})
            state = load_file(str(path))
        else:
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
            config = (ckpt.get("config") or {}).get("model", {})
            state = ckpt["model_state_dict"]
    except Exception as e:
        raise ModelError(f"{path}: not a readable audio-quality router checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path}: router 'config.model' is not an object")
    model = AudioQualityClassifier(**config)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ModelError(f"{path}: router weights do not match its config ({str(e).splitlines()[0]})") from None
    return AudioQualityRouter(model, threshold, path)
