"""Small helpers shared by the data generators: seeds, WAV and manifest I/O, progress."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import soundfile as sf

from ..errors import AsrQuantError, AudioError

SAMPLE_RATE = 16000
MANIFEST_JSONL = "manifest.jsonl"


def derive_seed(*parts: Any) -> int:
    """A 128-bit integer seed from any JSON-able parts (e.g. ``(seed, clip_id, condition)``).

    Hashing the parts (rather than drawing from one stream) makes every clip's randomness
    independent of which other clips are generated and in which order.
    """
    blob = json.dumps(list(parts), separators=(",", ":"), ensure_ascii=True).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:16], "little")


def rng_for(*parts: Any) -> np.random.Generator:
    return np.random.default_rng(derive_seed(*parts))


def safe_id(text: str) -> str:
    """A filesystem-safe clip id (letters, digits, ``-`` and ``_``)."""
    out = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")
    if not out:
        raise AsrQuantError(f"clip id {text!r} has no usable characters")
    return out


def r6(x: float) -> float:
    """Round a drawn value for the manifest (the audio is made from this rounded value)."""
    return float(round(float(x), 6))


def write_wav(path: Path, audio: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """16-bit PCM mono WAV. Values are clipped to [-1, 1] first (the callers keep headroom)."""
    a = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0)
    sf.write(str(path), a, sr, subtype="PCM_16", format="WAV")


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    try:
        a, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file") from None
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioError(f"{path}: cannot decode ({e})") from None
    if a.shape[0] == 0:
        raise AudioError(f"{path}: empty audio")
    return a.mean(axis=1).astype(np.float32), int(sr)


def load_16k(path: Path) -> np.ndarray:
    """Mono float32 at 16 kHz (soxr resampling when the file has another rate)."""
    a, sr = read_wav(path)
    if sr != SAMPLE_RATE:
        import soxr

        a = soxr.resample(a, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return a


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_JSONL
    if not p.is_file():
        raise AsrQuantError(f"{p}: no such manifest")
    rows = []
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise AsrQuantError(f"{p}:{n}: not valid JSON ({e})") from None
            for key in ("id", "audio", "text"):
                if key not in row:
                    raise AsrQuantError(f"{p}:{n}: missing field {key!r}")
            rows.append(row)
    if not rows:
        raise AsrQuantError(f"{p}: empty manifest")
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise AsrQuantError(f"{p}: duplicate clip ids")
    return rows


