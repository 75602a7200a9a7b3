"""Qwen3-ASR through the command line, as Whisper goes: ``asrquant quantize`` (calibrated on a
manifest) -> load_quantized, ``asrquant export`` -> the torch-free ONNX engine, ``asrquant bench``
with the checkpoint and the ONNX export side by side. On the small random checkpoint (its output
is gibberish): tokens are compared, not words."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from asrquant.artifact import sha256_file
from asrquant.audio import load_audio
from asrquant.cli import main
from asrquant.engines import open_engine
from asrquant.errors import ArtifactError
from asrquant.families import family_of
from asrquant.models.qwen3_asr.calib import calibration_samples
from asrquant.models.qwen3_asr.load import load_qwen3_asr
from asrquant.models.qwen3_asr.torch_session import Qwen3ASRTorchSession
from asrquant.models.qwen3_asr.transcribe import EngineTranscriber, Qwen3ASRTranscriber
from asrquant.quant.command import quantize
from asrquant.quant.saved import load_quantized
from asrquant.spec import parse
from asrquant.transcript import OursEngine

from .qwen3_asr_fixture import write_clips, write_random_checkpoint

RECIPE = "gptq-int4-g64"
CALIB = [("cal-a", 1.3, "the cat sat on the mat", "en"), ("cal-b", 2.1, "hello world", "en"),
         ("cal-c", 1.7, "", None)]  # no reference: the model's own greedy output is used
EVAL = [("ev-a", 1.9, "the quick brown fox", "en"), ("ev-b", 2.6, "the dog barked", "en")]
MAX_NEW = 10


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    torch.set_num_threads(2)  # as the CLI runs: the in-memory GPTQ then sums in the same order
    root = tmp_path_factory.mktemp("qwen-cli")
    ckpt_dir, _ = write_random_checkpoint(root / "Qwen3-ASR-random", shards=2)
    calib = write_clips(root / "calib", "manifest", CALIB)
    evals = write_clips(root / "eval", "manifest", EVAL, seed=7)
    quantized = root / "quantized"
    assert main(["quantize", str(ckpt_dir), "--recipe", RECIPE, "--calib", str(calib), "--out", str(quantized),
                 "--quiet"]) == 0
    onnx_dir = root / "onnx"
    assert main(["export", str(quantized), "--out", str(onnx_dir), "--quiet"]) == 0
    return dict(root=root, ckpt=ckpt_dir, calib=calib, eval=evals, quantized=quantized, onnx=onnx_dir)


def _engine_of(ckpt) -> OursEngine:
    tr = Qwen3ASRTranscriber(Qwen3ASRTorchSession(ckpt.model), ckpt.tokenizer(), ckpt.dims.n_window, ckpt.dims.n_mels)
    return OursEngine("in-memory", EngineTranscriber(tr, "in-memory"), ckpt.size_bytes, "asrquant-torch")


def _tokens(engine, work, language="en"):
    return [engine.transcribe(load_audio(work["eval"].parent / f"{cid}.wav"), language, 1, MAX_NEW).tokens
            for cid, *_ in EVAL]


def test_calibration_samples_are_prompt_reference_and_end(work, capsys):
    ckpt = load_qwen3_asr(work["ckpt"])
    tok = ckpt.tokenizer()
    samples, cal = calibration_samples(ckpt, work["calib"], 3, progress=False)
    # Qwen3-ASR is multilingual and these clips are all English: one warning line names the manifest.
    warned = [l for l in capsys.readouterr().err.splitlines() if "warning" in l]
    assert len(warned) == 1 and str(work["calib"]) in warned[0] and "'en'" in warned[0]
    assert cal.ids == ["cal-a", "cal-b", "cal-c"]
    assert cal.audio_sha256 == [sha256_file(work["calib"].parent / f"{c[0]}.wav") for c in CALIB]
    first = samples[0]
    n_audio = ckpt.dims.n_audio_tokens(first.mel.shape[1])
    want = tok.prompt_ids(n_audio, "", "English") + tok.encode("the cat sat on the mat") + [tok.specials.im_end]
    assert first.tokens.tolist() == want and first.mel.shape[0] == ckpt.dims.n_mels
    # No reference and no language: the unforced prompt, then what the float model itself writes.
    transcriber = _engine_of(ckpt).transcriber.transcriber
    own = transcriber.transcribe(load_audio(work["calib"].parent / "cal-c.wav")).result.tokens
    n_audio = ckpt.dims.n_audio_tokens(samples[2].mel.shape[1])
    assert samples[2].tokens.tolist() == tok.prompt_ids(n_audio) + own + [tok.specials.im_end]


def test_cli_quantize_round_trips_to_the_in_memory_model(work):
    saved = load_quantized(work["quantized"])
    config = json.loads((work["quantized"] / "config.json").read_text())
    assert config["family"] == "qwen3-asr" and config["kind"] == "asrquant-quantized"
    assert config["hf_config"] == json.loads((work["ckpt"] / "config.json").read_text())
    cal = json.loads((work["quantized"] / "quantization.json").read_text())["calibration"]
    assert cal["ids"] == [c[0] for c in CALIB] and len(cal["audio_sha256"]) == 3
    assert saved.recipe.name == RECIPE and len(saved.report["layers"]) == 29

    memory = quantize(str(work["ckpt"]), RECIPE, work["calib"], progress=False)
    a, b = memory.ckpt.model.state_dict(), saved.ckpt.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert saved.ckpt.model.lm_head.weight is saved.ckpt.model.model.embed_tokens.weight  # tied, stored once
    want = _tokens(_engine_of(memory.ckpt), work)
    assert _tokens(open_engine(str(work["quantized"])), work) == want and all(want)


def test_tampered_quantized_dir_is_refused_naming_the_file(work, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(work["quantized"], copy)
    with open(copy / "model.safetensors", "r+b") as f:
        f.seek(-10, 2)
        f.write(b"\x00" * 10)
    with pytest.raises(ArtifactError, match="model.safetensors"):
        load_quantized(copy)


def test_cli_export_onnx_engine_tokens_equal_torch_fake_quant(work):
    manifest = json.loads((work["onnx"] / "manifest.json").read_text())
    assert manifest["family"] == "qwen3-asr"
    graphs = manifest["variants"]["default"]["graphs"]
    assert set(graphs) == {"encoder", "decoder_prefill", "decoder_step"}
    assert "decoder.onnx.data" in manifest["files"]  # one weights file for both decoder graphs
    table = 151936 * 64 * 4  # the tied embedding / lm_head of the fixture, float32
    assert table < manifest["files"]["decoder.onnx.data"]["bytes"] < 1.5 * table  # stored once, not twice
    onnx_engine, torch_engine = open_engine(str(work["onnx"])), open_engine(str(work["quantized"]))
    assert onnx_engine.engine == "asrquant-onnx" and torch_engine.engine == "asrquant-torch"
    for language in ("en", None):  # forced language, and the model's own language line
        want = _tokens(torch_engine, work, language)
        assert _tokens(onnx_engine, work, language) == want and all(want)


def test_whisper_runner_refuses_a_qwen_export_by_name(work):
    from asrquant.models.whisper.onnx_session import open_onnx_artifact

    with pytest.raises(ArtifactError, match="qwen3-asr"):
        open_onnx_artifact(work["onnx"])


def test_qwen_runner_refuses_another_familys_export_by_name(work, tmp_path):
    import shutil

    from asrquant.models.qwen3_asr.onnx_session import open_onnx_artifact

    copy = tmp_path / "onnx"
    shutil.copytree(work["onnx"], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "family": "whisper"}))
    with pytest.raises(ArtifactError, match="'whisper' model"):
        open_onnx_artifact(copy)


def test_onnx_engine_runs_without_torch(work):
    code = ("import sys; from asrquant.engines import open_engine; import numpy as np; "
            f"e = open_engine({str(work['onnx'])!r}); "
            "out = e.transcribe(np.zeros(16000, np.float32) + 0.01, 'en', 1, 3); "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'onnx' not in sys.modules, 'onnx imported'; print(len(out.tokens))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.strip()) > 0


def test_family_is_read_from_the_config_not_the_name(work, tmp_path):
    assert family_of(work["ckpt"]) == "qwen3-asr" and family_of(work["quantized"]) == "qwen3-asr"
    assert parse(f"{work['ckpt']}@rtn-int4-g64").family == "qwen3-asr"
    mega = tmp_path / "mega-root"  # Mega-ASR's layout: the checkpoint in a subfolder
    mega.mkdir()
    (mega / "Qwen3-ASR-1.7B").symlink_to(work["ckpt"], target_is_directory=True)
    assert family_of(mega) == "qwen3-asr"
    named = tmp_path / "Qwen3-ASR-1.7B"  # a name that says Qwen, a config that does not
    named.mkdir()
    (named / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    assert family_of(named) == "whisper"


def test_bench_runs_the_checkpoint_and_the_onnx_export(work, tmp_path, monkeypatch):
    monkeypatch.setenv("ASRQUANT_CACHE", str(tmp_path / "cache"))
    report_path = tmp_path / "bench.json"
    argv = ["bench", "--model", str(work["ckpt"]), "--model", str(work["onnx"]), "--model",
            f"{work['ckpt']}@{RECIPE}", "--data", str(work["eval"]), "--calib", str(work["eval"]),
            "--max-new-tokens", "6", "--json", str(report_path)]
    assert main(argv) == 0
    report = json.loads(report_path.read_text())
    engines = [r["engine"] for r in report["runs"]]
    assert engines == ["asrquant-torch", "asrquant-onnx", "asrquant-torch"]
    for run in report["runs"]:
        assert run["n"] == 2 and run["size_bytes"] > 0 and np.isfinite(run["rtf"])
        assert all(c["hyp"] is not None and c["stops"] for c in run["clips"])
    # Calibrated on the evaluation clips: the bench says so, as it does for Whisper.
    assert len(report["warnings"]) == 1 and RECIPE in report["warnings"][0]
    assert "2 evaluation clip(s)" in report["warnings"][0]


def test_cli_transcribe_a_qwen_checkpoint(work, capsys):
    wav = work["eval"].parent / "ev-a.wav"
    assert main(["transcribe", str(work["ckpt"]), str(wav), "--json", "--language", "en", "--max-new-tokens", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    want = open_engine(str(work["ckpt"])).transcribe(load_audio(wav), "en", 1, 4)
    assert out["text"] == want.text and out["language"] == "en" and out["stops"] == want.stops


def test_float_export_added_as_a_variant_runs_as_the_float_model(work, tmp_path):
    import shutil

    onnx_dir = tmp_path / "onnx"
    shutil.copytree(work["onnx"], onnx_dir)
    assert main(["export", str(work["ckpt"]), "--out", str(onnx_dir), "--variant", "float", "--quiet"]) == 0
    variants = json.loads((onnx_dir / "manifest.json").read_text())["variants"]
    assert set(variants) == {"default", "float"} and variants["float"]["recipe"] is None
    want = _tokens(open_engine(str(work["ckpt"])), work)
    assert _tokens(open_engine(f"{onnx_dir}@float"), work) == want
    for spec, variant in ((str(onnx_dir), "default"), (f"{onnx_dir}@float", "float")):
        assert open_engine(spec).size_bytes == _bytes_read(onnx_dir, variant)


def _bytes_read(directory, variant: str) -> int:
    """What a runner of ``variant`` reads, from its graphs' own external-data locations (the size
    the runner reports by the layout's file names, without parsing a graph)."""
    import onnx

    manifest = json.loads((directory / "manifest.json").read_text())
    graphs = manifest["variants"][variant]["graphs"]
    used = set(graphs.values())
    for f in graphs.values():
        proto = onnx.load(str(directory / f), load_external_data=False)
        used |= {e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"}
    return sum(manifest["files"][f]["bytes"] for f in used)


def test_saved_quantized_dir_exports_to_compressed_tensors_with_the_hf_config(work, tmp_path):
    out = tmp_path / "ct"
    assert main(["export", str(work["quantized"]), "--format", "compressed-tensors", "--out", str(out), "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "qwen3_asr" and "quantization_config" in config
    assert json.loads((out / "manifest.json").read_text())["family"] == "qwen3-asr"


def test_int8_compute_variant_runs_the_audio_encoder_in_int8(work, tmp_path, monkeypatch):
    import shutil

    import onnx

    from asrquant.runtime.int8_weights import ENV

    onnx_dir = tmp_path / "onnx"
    shutil.copytree(work["onnx"], onnx_dir)
    assert main(["export", str(work["quantized"]), "--out", str(onnx_dir), "--variant", "i8", "--compute", "int8",
                 "--quiet"]) == 0
    variant = json.loads((onnx_dir / "manifest.json").read_text())["variants"]["i8"]
    assert variant["compute"] == "int8"
    ops = {name: t.get("op", "") for name, t in variant["tensors"].items()}
    assert all(op.startswith("MatMulIntegerToFloat") for name, op in ops.items() if name.startswith("audio_tower."))
    assert all(op == "MatMulNBits" for name, op in ops.items() if name.startswith("model.layers."))
    encoder = onnx.load(str(onnx_dir / variant["graphs"]["encoder"]), load_external_data=False)
    assert "MatMulNBits" not in {n.op_type for n in encoder.graph.node}
    tokens = _tokens(open_engine(f"{onnx_dir}@i8"), work)
    assert all(tokens) and all(len(t) <= MAX_NEW for t in tokens)
    assert open_engine(f"{onnx_dir}@i8").size_bytes == _bytes_read(onnx_dir, "i8")
    # the shared writer gives the audio encoder its signed twin; opened signed, it runs as the in-memory edit
    assert variant["signed_graphs"] == {"encoder": "encoder.i8+s8.onnx"}
    monkeypatch.setenv(ENV, "s8")
    twin = _tokens(open_engine(f"{onnx_dir}@i8"), work)
    manifest = json.loads((onnx_dir / "manifest.json").read_text())
    del manifest["variants"]["i8"]["signed_graphs"]  # as written before twins: signed in memory
    (onnx_dir / "manifest.json").write_text(json.dumps(manifest))
    assert twin == _tokens(open_engine(f"{onnx_dir}@i8"), work)


def test_int8_skip_keeps_the_costliest_audio_encoder_linears_on_float_compute(work, tmp_path, capsys):
    """--int8-skip on a saved quantized model: the costs are measured against its float source (loaded
    again from the path its config names), every audio-encoder Linear gets one, the two costliest
    stay MatMulNBits, and the artifact transcribes; the card says so."""
    import onnx

    out = tmp_path / "onnx"
    assert main(["export", str(work["quantized"]), "--out", str(out), "--compute", "int8", "--int8-skip", "2",
                 "--calib", str(work["calib"]), "--quiet"]) == 0
    variant = json.loads((out / "manifest.json").read_text())["variants"]["default"]
    choice = variant["int8_choice"]
    costs = {n: t["int8_cost"]["kl_increase"] for n, t in variant["tensors"].items() if "int8_cost" in t}
    audio = [n for n in variant["tensors"] if n.startswith("audio_tower.") and "op" in variant["tensors"][n]]
    assert set(costs) == set(audio) and choice["of"] == len(audio)
    assert choice["float_compute"] == sorted(costs, key=costs.get, reverse=True)[:2]
    assert choice["calibration"]["ids"] == ["cal-a", "cal-b", "cal-c"]
    encoder = onnx.load(str(out / variant["graphs"]["encoder"]), load_external_data=False)
    ops = [n.op_type for n in encoder.graph.node]
    assert ops.count("MatMulNBits") == 2 and ops.count("MatMulIntegerToFloat") == len(audio) - 2
    assert "--int8-skip 2" in (out / "README.md").read_text()
    tokens = _tokens(open_engine(str(out)), work)
    assert all(tokens) and all(len(t) <= MAX_NEW for t in tokens)
