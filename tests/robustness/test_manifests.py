"""Evaluation manifests, written and fuzzed here: every bad one is refused naming file:line and
the field, before a model is opened."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asrquant.errors import AsrQuantError
from asrquant.eval.manifest import read_manifest

from .conftest import cli, refused

GOOD = {"id": "a", "audio": "a.wav", "text": "hello there", "lang": "en", "category": "clean", "duration_s": 1.5}
BAD_ROWS = {
    "not_json": ("{id: a}", "not valid JSON"),
    "array_row": ("[1, 2]", "expected a JSON object"),
    "string_row": ('"a.wav"', "expected a JSON object"),
    "missing_id": ({k: v for k, v in GOOD.items() if k != "id"}, "'id'"),
    "missing_audio": ({k: v for k, v in GOOD.items() if k != "audio"}, "'audio'"),
    "missing_text": ({k: v for k, v in GOOD.items() if k != "text"}, "'text'"),
    "audio_null": ({**GOOD, "audio": None}, "'audio'"),
    "audio_number": ({**GOOD, "audio": 5}, "'audio'"),
    "audio_empty": ({**GOOD, "audio": ""}, "'audio'"),
    "audio_list": ({**GOOD, "audio": ["a.wav"]}, "'audio'"),
    "text_null": ({**GOOD, "text": None}, "'text'"),
    "text_empty": ({**GOOD, "text": ""}, "'text' is empty"),
    "text_blank": ({**GOOD, "text": "   "}, "'text' is empty"),
    "text_number": ({**GOOD, "text": 42}, "'text'"),
    "id_empty": ({**GOOD, "id": ""}, "'id'"),
    "id_bool": ({**GOOD, "id": True}, "'id'"),
    "id_object": ({**GOOD, "id": {"x": 1}}, "'id'"),
    "lang_number": ({**GOOD, "lang": 5}, "'lang'"),
    "lang_empty": ({**GOOD, "lang": ""}, "'lang'"),
    "category_number": ({**GOOD, "category": 3}, "'category'"),
    "duration_text": ({**GOOD, "duration_s": "long"}, "'duration_s'"),
    "duration_negative": ({**GOOD, "duration_s": -1}, "'duration_s'"),
    "duration_nan": ('{"id": "a", "audio": "a.wav", "text": "x", "duration_s": NaN}', "'duration_s'"),
}


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_row_is_refused_naming_file_line_and_field(capsys, tmp_path, case):
    row, words = BAD_ROWS[case]
    manifest = _write(tmp_path / "manifest.jsonl", [GOOD | {"id": "first"}, row])
    where = f"{manifest}" if case.startswith("text_") and "empty" in words else f"{manifest}:2"
    err = refused(cli(capsys, "bench", "--model", "whisper-tiny.en", "--data", manifest,
                      "--json", tmp_path / "r.json"), where, words)
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("content,words", [
    (b"", "no clips"), (b"\n\n  \n", "no clips"), (b"\xff\xfe\x00garbage", "not UTF-8"),
    (b'{"id": "a", "audio": "a.wav", "text": "x"}\n{"id": "a", "audio": "b.wav", "text": "y"}\n', "more than once"),
])
def test_bad_file_is_refused(capsys, tmp_path, content, words):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_bytes(content)
    refused(cli(capsys, "bench", "--model", "whisper-tiny.en", "--data", manifest), manifest, words)


def test_a_directory_or_a_missing_manifest(capsys, tmp_path):
    refused(cli(capsys, "bench", "--model", "whisper-tiny.en", "--data", tmp_path), tmp_path, "not found")
    refused(cli(capsys, "bench", "--model", "whisper-tiny.en", "--data", tmp_path / "no.jsonl"), "no.jsonl")


def test_the_same_id_in_two_manifests(capsys, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = _write(tmp_path / "a" / "manifest.jsonl", [GOOD])
    two = _write(tmp_path / "b" / "manifest.jsonl", [GOOD])
    refused(cli(capsys, "bench", "--model", "whisper-tiny.en", "--data", one, "--data", two), "'a'", "another")


@pytest.mark.parametrize("seed", range(24))
def test_fuzzed_manifest_parses_or_names_the_file(tmp_path, seed):
    """Random byte edits of a valid manifest: either still a valid manifest, or one clear error."""
    rng = np.random.default_rng(seed)
    raw = bytearray(_write(tmp_path / "m.jsonl", [GOOD, GOOD | {"id": "b", "text": "second clip"}]).read_bytes())
    for _ in range(int(rng.integers(1, 6))):
        raw[int(rng.integers(len(raw)))] = int(rng.integers(0, 256))
    path = tmp_path / "fuzzed.jsonl"
    path.write_bytes(bytes(raw))
    try:
        clips = read_manifest(path)
    except AsrQuantError as e:
        assert str(path) in str(e)
    else:
        assert clips and all(c.id for c in clips)
