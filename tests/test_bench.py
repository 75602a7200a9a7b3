"""The bench end to end on the real tiny.en weights: bad input is reported per clip and the
run goes on; a wrong model is a one-line error; the report has every field the issue names."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIP = SHARED / "vitw8" / "vitw_01757_random_synthetic_en_far_field.wav"
pytestmark = pytest.mark.skipif(not CLIP.exists(), reason="shared data not present")


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "asrquant.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def bad_manifest(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    (d / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    (d / "empty.wav").write_bytes(b"")
    sf.write(d / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    rows = [
        {"id": "good", "audio": str(CLIP), "text": "Please remind me to print the forms before we leave "
         "for the appointment tomorrow.", "lang": "en", "category": "far"},
        {"id": "corrupt", "audio": "corrupt.wav", "text": "x", "lang": "en"},
        {"id": "empty", "audio": "empty.wav", "text": "x", "lang": "en"},
        {"id": "silent", "audio": "silent.wav", "text": "nothing", "lang": "en", "category": "silence"},
        {"id": "missing", "audio": "nowhere.wav", "text": "x", "lang": "en"},
    ]
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d / "manifest.jsonl"


def test_bench_reports_bad_input_per_clip_and_goes_on(bad_manifest, tmp_path):
    out = tmp_path / "r.json"
    r = run_cli("bench", "--model", "whisper-tiny.en", "--data", str(bad_manifest), "--json", str(out),
                "--markdown", str(tmp_path / "r.md"), "--threads", "1")
    assert r.returncode == 0, r.stderr
    run = json.loads(out.read_text())["runs"][0]
    for key in ("spec", "engine", "size_bytes", "wer", "agreement", "rtf", "peak_rss_mb", "load_s", "failures",
                "per_category", "clips"):
        assert key in run
    clips = {c["id"]: c for c in run["clips"]}
    assert run["failures"]["bad_input"] == 3
    for bad in ("corrupt", "empty", "missing"):
        assert clips[bad]["hyp"] is None and bad_manifest.parent.name in clips[bad]["error"]
    assert "nowhere.wav" in clips["missing"]["error"]
    assert clips["good"]["errors"] <= 3 and clips["good"]["ref_words"] == 14
    # Silence is decodable but any transcript of it would be invented: counted and flagged, not scored.
    assert clips["silent"]["hyp"] is None and clips["silent"]["error_kind"] == "silence"
    assert run["failures"]["silence"] == 1
    assert run["per_category"]["far"]["n"] == 1
    assert 0 < run["rtf"] < 5 and run["peak_rss_mb"] > 50 and run["size_bytes"] > 10_000_000
    assert 0 < run["encoder_share"] < 1 and run["bits_per_weight"] is None  # float model
    md = (tmp_path / "r.md").read_text()
    assert "bad input" in md and "**silence**" in md


def test_wrong_model_is_a_one_line_error(tmp_path):
    r = run_cli("transcribe", str(tmp_path / "no-such-model"), str(CLIP))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-model" in lines[0] and "Traceback" not in r.stderr


def test_bad_audio_in_transcribe_names_the_file(tmp_path):
    bad = tmp_path / "broken.flac"
    bad.write_bytes(b"not audio at all")
    r = run_cli("transcribe", "whisper-tiny.en", str(bad), "--threads", "1")
    assert r.returncode == 2 and "broken.flac" in r.stderr and "Traceback" not in r.stderr


def test_peak_rss_is_the_childs_own_not_its_big_parents(tmp_path):
    """getrusage's ru_maxrss survives exec on Linux: a bench child of a big parent would report the
    parent's size. The child reports its own high-water mark (VmHWM)."""
    script = tmp_path / "big_parent.py"
    manifest = tmp_path / "one.jsonl"
    manifest.write_text(json.dumps({"id": "far", "audio": str(CLIP), "text": "Please remind me to print the forms "
                                    "before we leave for the appointment tomorrow.", "lang": "en"}) + "\n")
    script.write_text(
        "import json, sys\n"
        "import numpy as np\n"
        "ballast = np.ones(1536 * 2**20 // 8)  # 1.5 GiB, touched\n"
        "from asrquant.bench import _peak_rss_mb, bench\n"
        f"report = bench(['whisper-tiny.en'], [{str(manifest)!r}], threads=1, progress=False)\n"
        "print(json.dumps({'parent': _peak_rss_mb(), 'child': report['runs'][0]['peak_rss_mb']}))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    sizes = json.loads(out.stdout.strip().splitlines()[-1])
    assert sizes["parent"] > 1536
    assert 50 < sizes["child"] < sizes["parent"] - 700


def test_peak_rss_falls_back_to_getrusage_without_proc(tmp_path):
    from asrquant.bench import _peak_rss_mb

    assert _peak_rss_mb(str(tmp_path / "no-proc-status")) > 10
