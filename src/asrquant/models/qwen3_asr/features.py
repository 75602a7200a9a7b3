"""Qwen3-ASR's input features, in numpy (the torch-free runner uses this).

qwen-asr runs transformers' WhisperFeatureExtractor with ``padding=True, truncation=False`` on
one clip at a time: the Whisper log-mel (128 bins) of the clip as it is, NOT padded to 30 s, so
it has len(audio) // 160 frames and its (max - 8) clamp is taken over the clip itself. That is
:func:`asrquant.features.log_mel` with ``n_samples=None``.

The encoder then wants the log-mel cut into 100-frame chunks; :func:`chunk_mel` does that the
way :func:`asrquant.models.qwen3_asr.model.chunk_mel` does in torch (same layout, same padding).
"""

from __future__ import annotations

import numpy as np

from ...features import HOP_LENGTH, N_FFT, log_mel

N_MELS = 128


def qwen3_asr_log_mel(audio: np.ndarray, n_mels: int = N_MELS) -> np.ndarray:
    """float32 [n_mels, len(audio) // 160] for mono 16 kHz audio (more than 200 samples)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"qwen3_asr_log_mel wants mono audio, got shape {audio.shape}")
    if audio.shape[0] <= N_FFT // 2 or audio.shape[0] < HOP_LENGTH:
        raise ValueError(f"audio too short for a log-mel: {audio.shape[0]} samples")
    return log_mel(audio, n_mels=n_mels, n_samples=None)


def conv_out_length(n_frames: int) -> int:
    n = int(n_frames)
    for _ in range(3):
        n = (n - 1) // 2 + 1 if n > 0 else 0
    return n


def n_audio_tokens(n_frames: int, n_window: int = 50) -> int:
    """Encoder tokens for ``n_frames`` log-mel frames (qwen-asr's _get_feat_extract_output_lengths
    for its fixed 100-frame chunks)."""
    chunk = 2 * n_window
    full, tail = divmod(int(n_frames), chunk)
    return full * conv_out_length(chunk) + conv_out_length(tail)


def chunk_mel(mel: np.ndarray, n_window: int = 50, n_window_infer: int = 800) -> tuple[np.ndarray, int]:
    """mel [n_mels, T] -> (chunks float32 [n_chunks, n_mels, W], n_tokens); see
    asrquant.models.qwen3_asr.model.chunk_mel."""
    mel = np.asarray(mel, dtype=np.float32)
    n_mels, n_frames = mel.shape
    if n_frames < 1:
        raise ValueError("empty log-mel")
    chunk = 2 * n_window
    per_window = n_window_infer // chunk
    width = min(chunk, n_frames)
    n_chunks = -(-n_frames // width)
    n_chunks = -(-n_chunks // per_window) * per_window
    padded = np.zeros((n_mels, n_chunks * width), dtype=np.float32)
    padded[:, :n_frames] = mel
    chunks = np.ascontiguousarray(padded.reshape(n_mels, n_chunks, width).transpose(1, 0, 2))
    return chunks, n_audio_tokens(n_frames, n_window)
