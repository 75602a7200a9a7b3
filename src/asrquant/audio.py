"""Decode an audio file into what every model here eats: mono float32 in [-1, 1] at 16 kHz.

soundfile (libsndfile) reads wav, flac, ogg and mp3 itself; anything else goes through the
`ffmpeg` binary when one is installed. Resampling is soxr at its highest quality. No torch
here: the ONNX runtime path decodes audio with this module.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError

SAMPLE_RATE = 16000
# Outside this a header is broken, not a recording: a WAV claiming 1 Hz would resample 444 bytes
# into minutes of invented audio.
MIN_RATE, MAX_RATE = 4000, 384000
# Shorter than this a model has nothing to hear and answers with a stock word ("you").
MIN_SECONDS = 0.1
SILENCE_DB = -60.0


def load_audio(path: str | Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The file at `path` as mono float32 samples in [-1, 1] at `sr` Hz.

    Raises AudioError (naming the file) when it is missing, cannot be decoded, or holds no
    samples. A silent file is valid audio; see `is_silent`.
    """
    path = _existing_file(path)
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    _check_wav_length(path)
    data, rate = _decode(path)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"{path}: sample rate {rate} Hz is implausible (expected {MIN_RATE}..{MAX_RATE}); "
                         "the header is broken")
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    if not all(np.isfinite(part).all() for part in _chunks(data)):
        raise AudioError(f"{path}: audio holds NaN or infinite samples")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != sr:
        mono = soxr.resample(mono, rate, sr, quality="VHQ")
    # A resampling filter can overshoot full scale on clipped input by a hair. In place: the samples
    # are ours, and an hour of audio is 230 MB that a copy would double.
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    return np.clip(mono, -1.0, 1.0, out=mono)


def audio_duration(path: str | Path) -> float:
    """Seconds of audio in the file; reads only the header when soundfile knows the format."""
    path = _existing_file(path)
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError):
        return len(load_audio(path)) / SAMPLE_RATE
    return info.frames / info.samplerate


def is_silent(audio: np.ndarray, threshold_db: float = -60.0) -> bool:
    """True when the RMS level of `audio` is below `threshold_db` dBFS (or it has no samples)."""
    if audio.size == 0:
        return True
    # In float64 for the sum's sake, a chunk at a time: squaring an hour at once would take 460 MB.
    energy = sum(float(np.square(part, dtype=np.float64).sum()) for part in _chunks(audio))
    rms = float(np.sqrt(energy / audio.size))
    return rms == 0.0 or 20.0 * np.log10(rms) < threshold_db


def check_speech(audio: np.ndarray, path: str | Path) -> np.ndarray:
    """``audio`` if a model should transcribe it; AudioError (kind "too_short" or "silence") for
    clips where any transcript would be invented."""
    seconds = len(audio) / SAMPLE_RATE
    if seconds < MIN_SECONDS:
        raise AudioError(f"{path}: {seconds:.3f} s of audio, too short to transcribe (under {MIN_SECONDS} s)",
                         kind="too_short")
    if is_silent(audio, SILENCE_DB):
        raise AudioError(f"{path}: silent (RMS below {SILENCE_DB:.0f} dBFS), nothing to transcribe", kind="silence")
    return audio


def _check_wav_length(path: Path) -> None:
    """A RIFF/WAVE file whose data chunk claims more bytes than the file holds was cut short;
    libsndfile would decode the part that is there without a word."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        size = path.stat().st_size
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return
            cid, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                held = size - f.tell()
                # 0 and 0xFFFFFFFF are how streaming writers say "unknown length".
                if length not in (0, 0xFFFFFFFF) and length > held:
                    raise AudioError(f"{path}: truncated: the WAV header claims {length} bytes of audio, "
                                     f"the file holds {held}")
                return
            f.seek(length + (length & 1), 1)


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such audio file")
    if not path.is_file():
        raise AudioError(f"{path}: not a file")
    return path


def _chunks(samples: np.ndarray, n: int = 1 << 20):
    """Consecutive slices of ``n`` frames (views): elementwise checks without a full-size temporary."""
    return (samples[i : i + n] for i in range(0, len(samples), n))


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """(frames x channels float32, sample rate), by soundfile or else by ffmpeg."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return data, rate
    except (sf.SoundFileError, RuntimeError) as e:
        # libsndfile's own words ("Format not recognised"), without the path said twice
        reason = (getattr(e, "error_string", None) or str(e).strip() or type(e).__name__).rstrip(".")
    except OSError as e:
        raise AudioError(f"{path}: cannot read ({e.strerror or e})") from e
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(f"{path}: cannot decode audio ({reason}; no ffmpeg installed to try)")
    return _decode_with_ffmpeg(ffmpeg, path)


def _decode_with_ffmpeg(ffmpeg: str, path: Path) -> tuple[np.ndarray, int]:
    # ffmpeg writes float WAV at the source rate to a seekable temp file (a piped WAV has no
    # sizes in its header); soundfile reads it back and soxr does the resampling as for any file.
    with tempfile.TemporaryDirectory(prefix="asrquant-audio-") as tmp:
        out = Path(tmp) / "decoded.wav"
        cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
               "-map", "0:a:0", "-c:a", "pcm_f32le", "-f", "wav", "-y", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            last = (proc.stderr.strip().splitlines() or ["no audio stream"])[-1]
            raise AudioError(f"{path}: cannot decode audio (ffmpeg: {last})")
        try:
            data, rate = sf.read(str(out), dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError) as e:
            raise AudioError(f"{path}: cannot decode audio (ffmpeg output unreadable: {e})") from e
    return data, rate
