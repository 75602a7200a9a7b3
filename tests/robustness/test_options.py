"""Every numeric option and name option is refused by the parser, naming it, before any work."""

from __future__ import annotations

import pytest

from .conftest import cli, refused

M = "whisper-tiny.en"
COMMANDS = {
    "transcribe": ["transcribe", M, "x.wav"],
    "bench": ["bench", "--model", M, "--data", "m.jsonl"],
    "quantize": ["quantize", M, "--recipe", "int8", "--out", "q"],
    "export": ["export", M, "--out", "o"],
    "demo": ["demo"],
    "tts": ["data", "tts", "--split", "calib", "--out", "t"],
    "wild": ["data", "wild", "--from", "m.jsonl", "--out", "w"],
}
INTS = ["0", "-1", "abc", "1.5", "", "1e3", "0x10"]
CASES = (
    [(c, "--threads", v) for c in ("transcribe", "bench", "quantize", "demo") for v in INTS + ["100000"]]
    + [(c, "--beam", v) for c in ("transcribe", "bench") for v in INTS + ["1000"]]
    + [(c, "--max-new-tokens", v) for c in ("transcribe", "bench") for v in INTS + ["100000"]]
    + [("bench", option, v) for option in ("--limit", "--repeat", "--jobs") for v in INTS]
    + [("bench", "--repeat", "1000"), ("bench", "--jobs", "1000")]
    + [("tts", "--limit", v) for v in INTS]
    + [(c, "--seed", v) for c in ("tts", "wild") for v in ("-1", "abc", "1.5", "", str(2**32))]
    + [("export", "--variant", v) for v in ("../evil", "a/b", "", "a b", ".", "..", "x" * 65, "v;rm", "v.onnx",
                                             "-")]
    + [("export", "--accuracy-level", v) for v in ("5", "-1", "x")]
)


@pytest.mark.parametrize("command,option,value", CASES)
def test_bad_option_value_is_refused_naming_it(capsys, tmp_path, monkeypatch, command, option, value):
    monkeypatch.chdir(tmp_path)
    err = refused(cli(capsys, *COMMANDS[command], f"{option}={value}"), option)
    assert "error:" in err and not list(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.parametrize("option", ["--threads", "--beam", "--max-new-tokens", "--limit", "--repeat", "--jobs"])
def test_the_bound_is_in_the_message(capsys, option):
    err = refused(cli(capsys, *COMMANDS["bench"], option, "0"), option)
    assert "at least 1 (got 0)" in err


@pytest.mark.parametrize("option", ["--json", "--markdown"])
@pytest.mark.parametrize("where", ["/proc/asrquant.report", "DIR", "FILE/report"])
def test_unwritable_report_path_is_refused_before_the_run(capsys, tmp_path, option, where):
    (tmp_path / "FILE").write_text("x")
    path = where.replace("DIR", str(tmp_path)).replace("FILE", str(tmp_path / "FILE"))
    manifest = tmp_path / "m.jsonl"  # never read: the refusal comes first
    refused(cli(capsys, "bench", "--model", M, "--data", manifest, option, path), option)
    assert (tmp_path / "FILE").read_text() == "x"


def test_faster_whisper_unknown_compute_type(capsys, clip):
    refused(cli(capsys, "transcribe", "faster-whisper:whisper-tiny.en:int3", clip), "int3", "compute type")
