"""ONNX exports whose manifest.json (or files) were edited, removed or fuzzed: transcribe says
which file is wrong — never "not a Whisper checkpoint", never a traceback."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from .conftest import cli, refused, tree


def _copy(src, dst):
    """Hard links: cheap; every edit below replaces a file rather than writing into the shared one."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def _replace(path, data: bytes):
    path.unlink()
    path.write_bytes(data)


def _edit(d, fn):
    m = json.loads((d / "manifest.json").read_text())
    fn(m)
    _replace(d / "manifest.json", json.dumps(m).encode())


def _delete(key):
    return lambda m: m.pop(key)


EDITS = {
    "manifest_missing": (lambda d: (d / "manifest.json").unlink(), "manifest.json"),
    "manifest_empty": (lambda d: _replace(d / "manifest.json", b""), "manifest.json"),
    "manifest_not_json": (lambda d: _replace(d / "manifest.json", b"{not json"), "manifest.json"),
    "manifest_a_list": (lambda d: _replace(d / "manifest.json", b"[1, 2]"), "manifest.json"),
    "manifest_binary": (lambda d: _replace(d / "manifest.json", b"\xff\xfe\x00\x01" * 30), "manifest.json"),
    "kind_wrong": (lambda d: _edit(d, lambda m: m.update(kind="model")), "manifest.json"),
    "family_unknown": (lambda d: _edit(d, lambda m: m.update(family="ctc")), "ctc"),
    "layout_future": (lambda d: _edit(d, lambda m: m.update(layout=99)), "manifest.json"),
    "files_missing": (lambda d: _edit(d, _delete("files")), "manifest.json"),
    "variants_missing": (lambda d: _edit(d, _delete("variants")), "manifest.json"),
    "default_variant_unknown": (lambda d: _edit(d, lambda m: m.update(default_variant="int9")), "int9"),
    "file_sha_changed": (lambda d: _edit(d, lambda m: m["files"]["encoder.onnx"].update(sha256="0" * 64)),
                         "encoder.onnx"),
    "file_size_changed": (lambda d: _edit(d, lambda m: m["files"]["encoder.onnx"].update(bytes=1)), "encoder.onnx"),
    "graph_deleted": (lambda d: (d / "decoder_step.onnx").unlink(), "decoder_step.onnx"),
    "weights_deleted": (lambda d: (d / "encoder.onnx.data").unlink(), "encoder.onnx.data"),
    "graph_truncated": (lambda d: _replace(d / "encoder.onnx", (d / "encoder.onnx").read_bytes()[:100]),
                        "encoder.onnx"),
    "weights_flipped": (lambda d: _replace(d / "encoder.onnx.data",
                                           b"\x00" + (d / "encoder.onnx.data").read_bytes()[1:]), "encoder.onnx.data"),
    "tokenizer_deleted": (lambda d: (d / "tokenizer.json").unlink(), "tokenizer.json"),
    "config_garbled": (lambda d: _replace(d / "config.json", b"{"), "config.json"),
}


@pytest.mark.parametrize("case", sorted(EDITS))
def test_edited_export_names_the_file(capsys, tmp_path, small_onnx, clip, case):
    d = _copy(small_onnx, tmp_path / "export")
    before = tree(small_onnx)
    edit, name = EDITS[case]
    edit(d)
    err = refused(cli(capsys, "transcribe", d, clip), name)
    assert "not a Whisper checkpoint" not in err and len(err.strip().splitlines()) == 1
    assert tree(small_onnx) == before  # the edits never reached the original through a link


def test_unknown_variant_names_the_known_ones(capsys, small_onnx, clip):
    refused(cli(capsys, "transcribe", f"{small_onnx}@int9", clip), "int9", "default")


@pytest.mark.parametrize("seed", range(16))
def test_fuzzed_manifest_is_refused_or_still_verifies(capsys, tmp_path, small_onnx, clip, seed):
    d = _copy(small_onnx, tmp_path / "export")
    raw = bytearray((d / "manifest.json").read_bytes())
    rng = np.random.default_rng(seed)
    for _ in range(int(rng.integers(1, 4))):
        raw[int(rng.integers(len(raw)))] = int(rng.integers(32, 127))
    _replace(d / "manifest.json", bytes(raw))
    code, out, err = cli(capsys, "transcribe", d, clip, "--max-new-tokens", "2")
    assert "Traceback" not in err
    if code == 1:  # it verified and ran; the random model said no word, which is flagged
        assert "[no_words]" in out and "no word" in err, err
    elif code != 0:
        assert code == 2 and str(d) in err and len(err.strip().splitlines()) == 1, err
