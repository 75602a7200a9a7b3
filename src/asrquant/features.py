"""Whisper's log-mel spectrogram in numpy: the same numbers as openai-whisper and
transformers' WhisperFeatureExtractor, without torch (the ONNX runtime path imports this).

The recipe: pad or trim the AUDIO to 30 s (480000 samples), centred STFT (reflect padding of
n_fft/2) with a 400-point periodic Hann window and hop 160, power spectrum, slaney mel
filterbank (80 or 128 bins, 0-8 kHz, slaney area normalisation), log10(max(mel, 1e-10)), drop
the last frame, clamp to (max - 8), then (x + 4) / 4.

openai-whisper and transformers pad the audio before the STFT, as here. faster-whisper
instead computes the log-mel of the whole file (with its clamp taken over the whole file) and
pads each 30 s window with zeros in log-mel space, so its features for a short clip differ
from these in the padded tail.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_SECONDS = 30
N_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE  # 480000
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000


def pad_or_trim(audio: np.ndarray, length: int = N_SAMPLES) -> np.ndarray:
    """`audio` cut to `length` samples, or zero-padded at the end up to it."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    pad = [(0, 0)] * (audio.ndim - 1) + [(0, length - audio.shape[-1])]
    return np.pad(audio, pad)


def log_mel(audio: np.ndarray, n_mels: int = 80, n_samples: int | None = N_SAMPLES) -> np.ndarray:
    """Whisper log-mel features of mono 16 kHz `audio`: float32 [n_mels, n_samples // 160].

    The audio is padded or trimmed to `n_samples` first (None: used as it is, and then it needs
    more than n_fft/2 samples for the reflect padding).
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"log_mel wants mono audio (one dimension), got shape {audio.shape}")
    sound = audio.shape[0]  # samples before the zero padding
    if n_samples is not None:
        audio = pad_or_trim(audio, n_samples)
    if audio.shape[0] <= N_FFT // 2:
        raise ValueError(f"log_mel needs more than {N_FFT // 2} samples, got {audio.shape[0]}")

    # Only the frames that touch the sound are transformed: a 4 s clip padded to 30 s is seven
    # eighths padding, whose frames have power exactly 0 (so mel 0, as if computed).
    n_frames = audio.shape[0] // HOP_LENGTH
    live = min(n_frames, _frames_touching(sound, audio.shape[0]))
    power = _power_spectrum(audio.astype(np.float64), live)  # [live, n_fft/2 + 1]
    with _one_blas_thread():
        mel = mel_filters(n_mels) @ power.T  # [n_mels, live]
    if live < n_frames:
        mel = np.concatenate([mel, np.zeros((n_mels, n_frames - live))], axis=1)
    spec = np.log10(np.maximum(mel, 1e-10))
    spec = np.maximum(spec, spec.max() - 8.0)
    return ((spec + 4.0) / 4.0).astype(np.float32)


def _frames_touching(sound: int, length: int) -> int:
    """How many leading frames of a centred STFT of ``length`` samples, of which only the first
    ``sound`` can be non-zero, may see a non-zero sample: frame f spans samples
    [f * hop - n_fft/2, f * hop + n_fft/2) of the audio, reflected at both ends. With fewer than
    n_fft/2 + 1 zeros at the end the reflection brings sound back into the last frames: all count."""
    if length - sound <= N_FFT // 2:
        return length // HOP_LENGTH
    return -(-(sound + N_FFT // 2) // HOP_LENGTH)  # the first frame starting at or after the sound's end is silent


def _power_spectrum(audio: np.ndarray, n_frames: int | None = None) -> np.ndarray:
    """|STFT|^2 of the first ``n_frames`` centred frames (default: all but the last one, which
    Whisper drops)."""
    padded = np.pad(audio, N_FFT // 2, mode="reflect")
    # A centred STFT has len // hop + 1 frames; only the first len // hop are kept.
    n_frames = audio.shape[0] // HOP_LENGTH if n_frames is None else n_frames
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][:n_frames]
    spectrum = np.fft.rfft(frames * _hann_window(), axis=-1)
    return spectrum.real**2 + spectrum.imag**2


def _one_blas_thread():
    """numpy's BLAS limited to one thread for the filterbank product. Why: next to onnxruntime's
    threads on a 2-core machine, OpenBLAS's own threads made this small product take 16 to 32 ms
    (their wake-ups), more than the whole log-mel on one thread (2 ms for a 4 s clip)."""
    return _blas_controller().limit(limits=1, user_api="blas")


@lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController  # scans the loaded libraries once

    return ThreadpoolController()


@lru_cache(maxsize=None)
def _hann_window() -> np.ndarray:
    # Periodic Hann, as torch.hann_window(400): the denominator is N, not N - 1.
    n = np.arange(N_FFT)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)


@lru_cache(maxsize=None)
def mel_filters(n_mels: int) -> np.ndarray:
    """Slaney-scale, slaney-normalised triangular filters [n_mels, n_fft/2 + 1] from 0 to 8 kHz,
    the bank librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels) gives Whisper."""
    fft_freqs = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel_points = np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), n_mels + 2)
    edges = _mel_to_hz(mel_points)  # lower edge, centre, upper edge of each filter

    widths = np.diff(edges)
    offsets = edges[:, None] - fft_freqs[None, :]  # [n_mels + 2, n_freqs]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    filters = np.maximum(0.0, np.minimum(rising, falling))

    # Slaney normalisation: every filter has (about) the same area.
    filters *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    filters.flags.writeable = False
    return filters


# The slaney mel scale: linear (200/3 Hz per mel) below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(hz):
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _F_SP
    logarithmic = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, logarithmic, linear)


def _mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _F_SP
    logarithmic = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, logarithmic, linear)
