"""The bench keeps what it measured: a broken model or clip is a row that says why, the report
is on disk after every run, an interrupt leaves a partial report and no worker behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from .conftest import cli, speech_like, write_wav


def _manifest(d: Path) -> Path:
    write_wav(d / "tone.wav", speech_like(1.0))
    write_wav(d / "silent.wav", np.zeros(32000, np.float32))
    write_wav(d / "short.wav", speech_like(0.03))
    rows = [{"id": "tone", "audio": "tone.wav", "text": "a tone"},
            {"id": "silent", "audio": "silent.wav", "text": "nothing"},
            {"id": "short", "audio": "short.wav", "text": "too short"},
            {"id": "missing", "audio": "nowhere.wav", "text": "gone"}]
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d / "manifest.jsonl"


def test_a_broken_model_and_broken_clips_are_rows_that_say_why(capsys, tmp_path, small_dir):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    report = tmp_path / "r.json"
    code, out, err = cli(capsys, "bench", "--model", broken, "--model", small_dir, "--data", _manifest(tmp_path),
                         "--json", report, "--markdown", tmp_path / "r.md", "--max-new-tokens", "4")
    assert code == 1 and "Traceback" not in err
    runs = {r["spec"]: r for r in json.loads(report.read_text())["runs"]}
    assert str(broken) in runs[str(broken)]["error"]
    good = runs[str(small_dir)]
    clips = {c["id"]: c for c in good["clips"]}
    assert clips["tone"]["hyp"] is not None
    assert (clips["silent"]["error_kind"], clips["short"]["error_kind"], clips["missing"]["error_kind"]) == (
        "silence", "too_short", "bad_input")
    assert good["failures"]["silence"] == good["failures"]["too_short"] == good["failures"]["bad_input"] == 1
    md = (tmp_path / "r.md").read_text()
    assert "**FAILED**" in md and str(broken) in md and "**silence**" in md and "PARTIAL" not in md


def _workers_with(tag: str) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if f"ASRQUANT_TEST_TAG={tag}".encode() in (p / "environ").read_bytes():
                    found.append(int(p.name))
            except OSError:
                pass
    return found


def test_interrupt_leaves_a_partial_report_and_no_worker(tmp_path, small_dir):
    tag = uuid.uuid4().hex
    report = tmp_path / "r.json"
    env = dict(os.environ, ASRQUANT_TEST_TAG=tag, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "asrquant.cli", "bench", "--model", str(small_dir),
                             "--data", str(_manifest(tmp_path)), "--repeat", "5", "--max-new-tokens", "4",
                             "--json", str(report), "--markdown", str(tmp_path / "r.md")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            # A suite started in the background by a shell inherits SIGINT ignored,
                            # and Python keeps it so: the bench must see Ctrl-C as a terminal gives it.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not report.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert report.exists(), proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    saved = json.loads(report.read_text())
    assert "interrupted" in saved["settings"]["partial"] and saved["runs"][0]["clips"]
    assert "PARTIAL REPORT" in (tmp_path / "r.md").read_text()
    time.sleep(0.5)
    assert _workers_with(tag) == []
