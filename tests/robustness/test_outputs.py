"""--out of quantize, export, data tts and data wild: never someone's data, never the input,
checked before any work, temporaries of killed runs cleaned."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from .conftest import cli, leftovers, refused, tree

OURS = {"asrquant_version": "0.0.0", "kind": "asrquant-quantized", "files": {}}


@pytest.fixture
def inputs(tmp_path, small_dir):
    """Per command: the argv before --out, and the input directory it reads."""
    text = tmp_path / "sentences" / "s.txt"
    text.parent.mkdir()
    text.write_text("one sentence.\n")
    wild = tmp_path / "wildsrc"
    wild.mkdir()
    (wild / "manifest.jsonl").write_text('{"id": "a", "audio": "a.wav", "text": "x"}\n')
    return {
        "quantize": (["quantize", small_dir, "--recipe", "rtn-int4-g64"], small_dir),
        "export": (["export", small_dir, "--quiet"], small_dir),
        "tts": (["data", "tts", "--text", text], text.parent),
        "wild": (["data", "wild", "--from", wild / "manifest.jsonl"], wild),
    }


COMMANDS = ["quantize", "export", "tts", "wild"]


def _foreign(path: Path) -> Path:
    path.mkdir()
    (path / "thesis.txt").write_text("four years of work")
    return path


def _ours(path: Path) -> Path:
    path.mkdir()
    (path / "manifest.json").write_text(json.dumps(OURS))
    return path


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("overwrite", [False, True])
def test_input_directory_is_never_the_output(capsys, inputs, command, overwrite):
    argv, source = inputs[command]
    before = tree(source)
    err = refused(cli(capsys, *argv, "--out", source, *(["--overwrite"] if overwrite else [])), source, "input")
    assert "destroy" in err and tree(source) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_a_directory_holding_the_input_is_never_the_output(capsys, inputs, command):
    argv, source = inputs[command]
    before = tree(source)
    refused(cli(capsys, *argv, "--out", source.parent, "--overwrite"), "input")
    assert tree(source) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_non_empty_foreign_directory_is_refused(capsys, inputs, command, tmp_path):
    argv, _ = inputs[command]
    out = _foreign(tmp_path / "mine")
    err = refused(cli(capsys, *argv, "--out", out), out, "--overwrite")
    assert "did not write" in err and (out / "thesis.txt").read_text() == "four years of work"
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("command", COMMANDS)
def test_our_artifact_is_replaced_only_with_overwrite(capsys, inputs, command, tmp_path):
    argv, _ = inputs[command]
    out = _ours(tmp_path / "previous")
    err = refused(cli(capsys, *argv, "--out", out), out, "--overwrite")
    assert "an asrquant artifact" in err and json.loads((out / "manifest.json").read_text()) == OURS


@pytest.mark.parametrize("command", COMMANDS)
def test_an_existing_file_is_not_turned_into_a_directory(capsys, inputs, command, tmp_path):
    argv, _ = inputs[command]
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    for extra in ([], ["--overwrite"]):
        refused(cli(capsys, *argv, "--out", out, *extra), out, "not a directory")
    assert out.read_text() == "keep me" and not leftovers(tmp_path)


@pytest.mark.parametrize("command", COMMANDS)
def test_working_directory_and_its_parents_are_refused(capsys, inputs, command, tmp_path, monkeypatch):
    argv, _ = inputs[command]
    work = _foreign(tmp_path / "work")
    monkeypatch.chdir(work)
    for out in (".", "..", str(work)):
        refused(cli(capsys, *argv, "--out", out, "--overwrite"), "working directory")
    assert (work / "thesis.txt").is_file() and not leftovers(work) and not leftovers(tmp_path)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_path_under_a_file_is_refused_before_work(capsys, inputs, command, tmp_path):
    argv, _ = inputs[command]
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    refused(cli(capsys, *argv, "--out", blocker / "sub" / "out"), "afile", "not a directory")
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unwritable_place_is_refused_before_work(capsys, inputs, command):
    # /proc takes no new entries, even for root: the probe, not the permission bits, decides.
    refused(cli(capsys, *inputs[command][0], "--out", "/proc/asrquant-out"), "/proc/asrquant-out", "cannot write")


@pytest.mark.parametrize("command", COMMANDS)
def test_empty_out_is_refused(capsys, inputs, command):
    refused(cli(capsys, *inputs[command][0], "--out", ""), "--out", "empty path")


def test_quantize_into_empty_directory_then_replace_with_overwrite(capsys, small_dir, tmp_path):
    out = tmp_path / "q"
    out.mkdir()
    assert cli(capsys, "quantize", small_dir, "--recipe", "rtn-int4-g64", "--out", out, "--quiet")[0] == 0
    first = tree(out)
    assert "model.safetensors" in first
    refused(cli(capsys, "quantize", small_dir, "--recipe", "int8", "--out", out), "--overwrite")
    assert tree(out) == first
    assert cli(capsys, "quantize", small_dir, "--recipe", "int8", "--out", out, "--overwrite", "--quiet")[0] == 0
    assert tree(out) != first and not leftovers(tmp_path)


def test_overwrite_replaces_a_foreign_directory_only_when_asked(capsys, small_dir, tmp_path):
    out = _foreign(tmp_path / "mine")
    assert cli(capsys, "quantize", small_dir, "--recipe", "rtn-int4-g64", "--out", out, "--overwrite",
               "--quiet")[0] == 0
    assert not (out / "thesis.txt").exists() and (out / "manifest.json").is_file() and not leftovers(tmp_path)


def test_a_variant_is_added_to_our_export_without_overwrite(capsys, small_dir, tmp_path):
    out = tmp_path / "onnx"
    assert cli(capsys, "export", small_dir, "--out", out, "--quiet")[0] == 0
    default = tree(out)
    code, _, err = cli(capsys, "export", small_dir, "--recipe", "rtn-int4-g64", "--out", out, "--variant", "int4",
                       "--quiet")
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["variants"]) == {"default", "int4"}
    assert all(name in tree(out) for name in default)  # the default variant's files are still there
    refused(cli(capsys, "export", small_dir, "--out", out, "--quiet"), "--overwrite")


def test_a_variant_is_not_added_to_a_foreign_directory(capsys, small_dir, tmp_path):
    out = _foreign(tmp_path / "mine")
    for extra in ([], ["--overwrite"]):
        refused(cli(capsys, "export", small_dir, "--out", out, "--variant", "v", *extra), out,
                "not an asrquant artifact")
    assert (out / "thesis.txt").is_file()


def test_a_variant_is_not_added_to_a_quantized_directory(capsys, small_dir, tmp_path):
    out = tmp_path / "q"
    assert cli(capsys, "quantize", small_dir, "--recipe", "rtn-int4-g64", "--out", out, "--quiet")[0] == 0
    before = tree(out)
    refused(cli(capsys, "export", small_dir, "--out", out, "--variant", "v"), out, "not an ONNX export")
    assert tree(out) == before


def test_stale_temporaries_of_dead_processes_are_cleaned(capsys, small_dir, tmp_path):
    dead = 2**22 + 12345  # above pid_max's default: no such process
    for name in (f".q.tmp-{dead}-abc", f".q.old-{dead}"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"\0" * 1000)
    alive = tmp_path / f".q.tmp-{os.getpid()}-live"
    alive.mkdir()
    other = tmp_path / f".other.tmp-{dead}-x"  # another output's: not ours to judge here
    other.mkdir()
    assert cli(capsys, "quantize", small_dir, "--recipe", "rtn-int4-g64", "--out", tmp_path / "q", "--quiet")[0] == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"q", alive.name, other.name}


def test_sigterm_during_the_write_leaves_no_temporary(capsys, small_dir, tmp_path, monkeypatch):
    import asrquant.quant.saved as saved

    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(saved, "write_manifest", killed)
    out = tmp_path / "q"
    code, _, err = cli(capsys, "quantize", small_dir, "--recipe", "rtn-int4-g64", "--out", out, "--quiet")
    assert code == 143 and "terminated" in err and "Traceback" not in err
    assert not out.exists() and not leftovers(tmp_path)


def test_sigint_during_the_write_keeps_the_previous_artifact(capsys, small_dir, tmp_path, monkeypatch):
    import asrquant.quant.saved as saved

    out = tmp_path / "q"
    assert cli(capsys, "quantize", small_dir, "--recipe", "rtn-int4-g64", "--out", out, "--quiet")[0] == 0
    before = tree(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(saved, "write_manifest", interrupted)
    code, _, err = cli(capsys, "quantize", small_dir, "--recipe", "int8", "--out", out, "--overwrite", "--quiet")
    assert code == 130 and "interrupted" in err
    assert tree(out) == before and not leftovers(tmp_path)
