"""`asrquant export` and `asrquant transcribe DIR` from the command line."""

import json

import numpy as np
import soundfile as sf

from asrquant.cli import main
from asrquant.models.whisper.load import write_hf_checkpoint


def test_export_then_transcribe(small_ckpt, tmp_path, capsys):
    model_dir = write_hf_checkpoint(small_ckpt, tmp_path / "hf")
    out = tmp_path / "onnx"
    assert main(["export", str(model_dir), "--out", str(out), "--quiet"]) == 0
    assert main(["export", str(model_dir), "--out", str(out), "--recipe", "rtn-int4-g64", "--variant", "int4",
                 "--accuracy-level", "4", "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["variants"]["int4"]["accuracy_level"] == 4
    assert manifest["variants"]["int4"]["tensors"]["encoder.blocks.0.mlp.fc1"]["scheme"] == "int4-g64-asym-fp16"
    wav = tmp_path / "a.wav"
    sf.write(wav, (0.1 * np.sin(np.arange(32000) / 10)).astype(np.float32), 16000)
    capsys.readouterr()
    for spec in (str(out), f"{out}@int4"):
        code = main(["transcribe", spec, str(wav), "--json", "--max-new-tokens", "5", "--threads", "1"])
        out, err = capsys.readouterr()
        # A random model may say no word: then it is flagged and exits 1, never 0.
        assert code == 0 or (code == 1 and "no_words" in json.loads(out)["stops"] and "no word" in err), err
        assert json.loads(out)["audio"] == str(wav)


def test_export_refuses_a_recipe_that_needs_calibration_without_clips(small_ckpt, tmp_path, capsys):
    model_dir = write_hf_checkpoint(small_ckpt, tmp_path / "hf")
    assert main(["export", str(model_dir), "--out", str(tmp_path / "o"), "--recipe", "gptq-int4-g64", "--quiet"]) == 2
    assert "--calib" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
