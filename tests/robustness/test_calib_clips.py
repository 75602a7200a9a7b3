"""--calib-clips: how many calibration clips a recipe takes, from the command line."""

import json

from .conftest import cli, leftovers, refused, speech_like, write_wav


def _manifest(tmp_path, n: int):
    rows = []
    for i in range(n):
        write_wav(tmp_path / f"c{i}.wav", speech_like(1.0, seed=i))
        rows.append({"id": f"c{i}", "audio": f"c{i}.wav", "text": "a short calibration sentence", "lang": "en"})
    m = tmp_path / "manifest.jsonl"
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return m


def test_quantize_takes_the_clips_given_and_records_them(capsys, small_dir, tmp_path):
    calib = _manifest(tmp_path, 6)
    out = tmp_path / "q"
    code, _, err = cli(capsys, "quantize", small_dir, "--recipe", "gptq-int4-g64", "--calib", calib,
                       "--calib-clips", "3", "--out", out, "--quiet")
    assert code == 0, err
    q = json.loads((out / "quantization.json").read_text())
    assert q["recipe"]["calibration"]["clips"] == 3  # the recipe as it ran, not as shipped (32)
    assert len(q["calibration"]["ids"]) == 3 and len(set(q["calibration"]["ids"])) == 3


def test_calib_clips_without_a_calibrated_recipe_is_refused(capsys, small_dir, tmp_path):
    calib = _manifest(tmp_path, 2)
    out = tmp_path / "q"
    refused(cli(capsys, "quantize", small_dir, "--recipe", "rtn-int4-g64", "--calib", calib, "--calib-clips", "2",
                "--out", out, "--quiet"), "--calib-clips", "rtn-int4-g64")
    refused(cli(capsys, "quantize", small_dir, "--recipe", "gptq-int4-g64", "--calib-clips", "2", "--out", out,
                "--quiet"), "--calib-clips", "--calib")
    refused(cli(capsys, "export", small_dir, "--calib-clips", "2", "--out", out, "--quiet"), "--calib-clips")
    q = tmp_path / "q32"  # already quantized: the clips it was calibrated on cannot change
    assert cli(capsys, "quantize", small_dir, "--recipe", "rtn-int4-g64", "--out", q, "--quiet")[0] == 0
    refused(cli(capsys, "export", q, "--calib-clips", "2", "--out", out, "--quiet"), "--calib-clips", str(q))
    refused(cli(capsys, "quantize", small_dir, "--recipe", "gptq-int4-g64", "--calib", calib, "--calib-clips", "0",
                "--out", out), "--calib-clips", "at least 1")
    assert not out.exists() and not leftovers(tmp_path)
