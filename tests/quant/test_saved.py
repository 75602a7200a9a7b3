"""The quantize stage end to end on real tiny.en weights: the saved format round-trips bit for
bit, a tampered file is refused, calibration sees the references, and the bench warns when
evaluation clips were calibration clips."""

import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from asrquant.errors import ArtifactError, AsrQuantError
from asrquant.families import is_quantized_dir
from asrquant.models.whisper.calib import calibration_samples
from asrquant.quant.calibrate import spread
from asrquant.quant.command import quantize
from asrquant.quant.linear import QuantLinear
from asrquant.quant.saved import load_quantized, save_quantized

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
VITW8 = SHARED / "vitw8" / "manifest.jsonl"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.set_num_threads(2)
    qm = quantize("whisper-tiny.en", "mixed-8attn-4mlp", None, progress=False)
    out = tmp_path_factory.mktemp("q") / "tiny-mixed"
    save_quantized(qm, out)
    return qm, out


def test_saved_model_round_trips_bit_for_bit(saved):
    qm, out = saved
    assert is_quantized_dir(out)
    back = load_quantized(out)
    a, b = qm.ckpt.model.state_dict(), back.ckpt.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the encoder's positions sit outside the state dict: tiny.en's CTranslate2 table is the
    # sinusoids rounded to float16, recorded as such and rebuilt bit for bit
    assert json.loads((out / "config.json").read_text())["encoder_positions"] == "float16"
    assert torch.equal(back.ckpt.model.encoder.positional_embedding, qm.ckpt.model.encoder.positional_embedding)
    quantized = [n for n, m in back.ckpt.model.named_modules() if isinstance(m, QuantLinear)]
    assert len(quantized) == 64
    schemes = json.loads((out / "quantization.json").read_text())["tensors"]
    assert schemes["encoder.blocks.0.attn.query"]["bits"] == 8 and schemes["encoder.blocks.0.mlp.fc1"]["bits"] == 4
    # 4-bit MLP + 8-bit attention + half-precision embeddings: well under the fp16 source
    assert back.ckpt.size_bytes < 0.75 * qm.ckpt.size_bytes


def test_the_same_weights_save_to_the_same_bytes(saved, tmp_path):
    """Saving one model again gives the same model.safetensors, byte for byte, so the manifests'
    sha256 say when two quantizations made the same weights (the library writes its metadata keys
    in a hash map's order, seeded anew for every file)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from asrquant.artifact import sha256_file, sort_safetensors_metadata

    qm, out = saved
    again = tmp_path / "again"
    save_quantized(qm, again)
    assert sha256_file(again / "model.safetensors") == sha256_file(out / "model.safetensors")
    assert (json.loads((again / "manifest.json").read_text())["files"]["model.safetensors"]
            == json.loads((out / "manifest.json").read_text())["files"]["model.safetensors"])
    # The rule itself, on many keys and files: one header, the metadata and tensors intact.
    tensors = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(4, dtype=torch.int8)}
    meta = {f"key{i}": f"value {i}" for i in range(8)}
    files = []
    for i in range(6):
        f = tmp_path / f"t{i}.safetensors"
        save_file(tensors, str(f), metadata=meta)
        sort_safetensors_metadata(f)
        files.append(f.read_bytes())
    assert len(set(files)) == 1
    with safe_open(str(tmp_path / "t0.safetensors"), framework="pt") as f:
        assert f.metadata() == meta and all(torch.equal(f.get_tensor(k), v) for k, v in tensors.items())


def test_trained_encoder_positions_are_stored(saved, tmp_path):
    qm, _ = saved
    model = copy.deepcopy(qm.ckpt.model)
    model.encoder.positional_embedding[3, 5] += 0.25  # a fine-tune that trained them
    trained = dataclasses.replace(qm, ckpt=dataclasses.replace(qm.ckpt, model=model))
    save_quantized(trained, tmp_path / "trained")
    assert json.loads((tmp_path / "trained" / "config.json").read_text())["encoder_positions"] == "stored"
    back = load_quantized(tmp_path / "trained")
    assert torch.equal(back.ckpt.model.encoder.positional_embedding, trained.ckpt.model.encoder.positional_embedding)


def test_tampered_file_is_refused_naming_it(saved, tmp_path):
    _, out = saved
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with open(copy / "model.safetensors", "r+b") as f:
        f.seek(-10, 2)
        f.write(b"\x00" * 10)
    with pytest.raises(ArtifactError, match="model.safetensors"):
        load_quantized(copy)


def test_gptq_recipe_without_calibration_is_a_clear_error():
    with pytest.raises(AsrQuantError, match="--calib"):
        quantize("whisper-tiny.en", "gptq-int4-g64", None, progress=False)


@pytest.mark.skipif(not VITW8.exists(), reason="shared data not present")
def test_calibration_samples_carry_the_reference_after_the_prompt():
    from asrquant.models.whisper.load import load_whisper
    from asrquant.models.whisper.tokenizer import WhisperTokenizer

    ckpt = load_whisper("whisper-tiny.en")
    samples, cal = calibration_samples(ckpt, VITW8, 3, progress=False)
    tok = WhisperTokenizer(ckpt.tokenizer_json, False)
    assert len(samples) == 3 and len(cal.ids) == 3 and len(set(cal.audio_sha256)) == 3
    s = samples[0]
    assert s.mel.shape == (80, 3000)
    assert list(s.tokens[:2]) == tok.prompt(None) and s.tokens[-1] == tok.eot
    assert tok.decode(s.tokens[2:]).split()[:2] == ["I", "usually"]


@pytest.mark.skipif(not VITW8.exists(), reason="shared data not present")
def test_clips_without_a_transcript_are_decoded_unless_only_mels_are_wanted(tmp_path, monkeypatch):
    from asrquant.models.whisper import transcribe
    from asrquant.models.whisper.load import load_whisper

    lines = VITW8.read_text().splitlines()[:1]
    d = json.loads(lines[0])
    d.update(text="", audio=str(VITW8.parent / d["audio"]))
    (tmp_path / "m.jsonl").write_text(json.dumps(d) + "\n")
    ckpt = load_whisper("whisper-tiny.en")
    greedy, _ = calibration_samples(ckpt, tmp_path / "m.jsonl", 1, progress=False)
    assert len(greedy[0].tokens) > 3  # prompt, the model's own words, end

    def no_decoding(*a, **k):
        raise AssertionError("decoded although only the log-mels were wanted")
    monkeypatch.setattr(transcribe.WhisperTranscriber, "transcribe", no_decoding)
    mels, _ = calibration_samples(ckpt, tmp_path / "m.jsonl", 1, progress=False, decode=False)
    assert list(mels[0].tokens) == list(greedy[0].tokens[:2]) + [greedy[0].tokens[-1]]
    assert np.array_equal(mels[0].mel, greedy[0].mel)


def test_spread_covers_the_whole_manifest():
    assert spread(10, 3) == [0, 4, 9] or spread(10, 3) == [0, 5, 9]
    assert spread(3, 10) == [0, 1, 2]


@pytest.mark.skipif(not VITW8.exists(), reason="shared data not present")
def test_bench_warns_when_evaluating_on_calibration_clips(tmp_path):
    from asrquant.bench import calibration_overlap
    from asrquant.eval.manifest import read_manifest
    from asrquant.models.whisper.load import load_whisper

    qm = quantize("whisper-tiny.en", "rtn-int4-g64", None, progress=False)
    qm.calibration = calibration_samples(load_whisper("whisper-tiny.en"), VITW8, 2, progress=False)[1]
    save_quantized(qm, tmp_path / "q")
    clips = read_manifest(VITW8)
    assert sorted(calibration_overlap(str(tmp_path / "q"), clips)) == sorted(qm.calibration.ids)
    r = subprocess.run([sys.executable, "-m", "asrquant.cli", "bench", "--model", str(tmp_path / "q"), "--data",
                        str(VITW8), "--limit", "1", "--threads", "1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "WARNING" in r.stderr and "calibration clips" in r.stderr
