"""Deployment targets: every target is valid data and listed; `asrquant export whisper-tiny.en
--target NAME` writes an artifact that its format's own reader loads, with a model card (README.md,
Hugging Face front matter) listed in the manifest; the vllm target's export loads in transformers
(decompressed) and transcribes as our fake-quant model does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from format_fixtures import DATA, VITW8, needs_mlx, needs_tiny, needs_vitw8, shortest_clips

from asrquant.artifact import sha256_file, verify
from asrquant.cli import main
from asrquant.errors import AsrQuantError
from asrquant.export.targets import all_targets, load_target, target_names

DEV = DATA / "dev" / "manifest.jsonl"
needs_dev = pytest.mark.skipif(not DEV.is_file(), reason="shared/data/dev not present")
CARD_KEYS = {"license", "base_model", "base_model_relation", "library_name", "tags", "pipeline_tag"}


def test_every_target_is_valid_and_names_its_recipe_format_and_benchmark():
    from asrquant.export.command import FORMATS
    from asrquant.quant.recipe import builtin_recipes

    assert {"cpu", "vllm", "tensorrt", "mlx"} <= set(target_names())
    root = Path(__file__).resolve().parents[2]
    for t in all_targets():
        assert t.format in FORMATS and t.recipe in builtin_recipes(), t.name
        assert (root / t.benchmark).is_file(), f"{t.name}: {t.benchmark} is not in the repository"
    cpu = load_target("cpu")
    assert (cpu.recipe, cpu.options) == ("gptq-int4-g64-enc32-emb4",
                                         {"compute": "int8", "fp16": True, "smooth": False, "attention": "int8"})
    from asrquant.quant.recipe import load_recipe

    assert all(r.scheme.symmetric for r in load_recipe(load_target("vllm").recipe).rules)


def test_targets_command_lists_them(capsys):
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    for name in ("cpu", "vllm", "tensorrt", "mlx"):
        assert f"\n{name} (v" in "\n" + out
    assert "benchmarks/onnx-export/README.md" in out


def test_unknown_target_and_conflicting_flags_are_refused(tmp_path, capsys):
    with pytest.raises(AsrQuantError, match="unknown target 'gpu'"):
        load_target("gpu")
    assert main(["export", "whisper-tiny.en", "--target", "cpu", "--recipe", "int8", "--out", str(tmp_path / "x")]) == 2
    assert "leave out --recipe" in capsys.readouterr().err
    assert main(["export", "whisper-tiny.en", "--target", "cpu", "--attention", "fused", "--out",
                 str(tmp_path / "x")]) == 2
    assert "leave out --attention" in capsys.readouterr().err
    assert main(["export", "whisper-tiny.en", "--format", "mlx", "--attention", "fused", "--out",
                 str(tmp_path / "x")]) == 2
    assert "--attention is an ONNX option" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def greedy_texts(ckpt, clips: list[dict]) -> list[str]:
    """Our torch runner's greedy transcripts of the fake-quant model."""
    from asrquant.audio import load_audio
    from asrquant.models.whisper.tokenizer import WhisperTokenizer
    from asrquant.models.whisper.torch_session import WhisperTorchSession
    from asrquant.models.whisper.transcribe import WhisperGeneration, WhisperTranscriber

    gen = WhisperGeneration(tuple(ckpt.suppress_ids), tuple(ckpt.suppress_ids_begin), ckpt.dims.n_mels)
    t = WhisperTranscriber(WhisperTorchSession(ckpt.model), WhisperTokenizer(ckpt.tokenizer_json, ckpt.multilingual),
                           gen)
    return [t.transcribe(load_audio(VITW8.parent / c["audio"]), "en", max_new_tokens=200, loop_guard=False).text.strip()
            for c in clips]


def small_calib(tmp_path: Path, n: int = 4) -> Path:
    rows = [json.loads(line) for line in DEV.read_text().splitlines()[:n]]
    for r in rows:
        r["audio"] = str((DEV.parent / r["audio"]).resolve())
    path = tmp_path / "calib.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def card(out: Path) -> tuple[dict, str]:
    text = (out / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert CARD_KEYS <= set(meta) and meta["base_model_relation"] == "quantized"
    assert meta["pipeline_tag"] == "automatic-speech-recognition" and meta["base_model"] == "openai/whisper-tiny.en"
    manifest = verify(out)
    assert manifest["files"]["README.md"]["sha256"] == sha256_file(out / "README.md")
    return meta, text


def export(tmp_path: Path, target: str, *extra: str) -> Path:
    out = tmp_path / target
    calib = small_calib(tmp_path)
    assert main(["export", "whisper-tiny.en", "--target", target, "--calib", str(calib), "--out", str(out),
                 "--quiet", *extra]) == 0
    assert not list(tmp_path.glob(f".{target}.*")), "staging left behind"
    return out


@pytest.fixture(scope="module")
def vllm_export(tmp_path_factory):
    """The vllm target's export of tiny.en by the command line, and the fake-quant checkpoint it was
    written from (caught on its way from quantization to the writer)."""
    if needs_tiny.args[0] or not DEV.is_file():
        pytest.skip("needs whisper-tiny.en and shared/data/dev")
    from asrquant.export import command

    caught = {}
    real = command.checkpoint

    def spy(args):
        caught["quantized"], ckpt, recipe = real(args)
        return caught["quantized"], ckpt, recipe

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(command, "checkpoint", spy)
        out = export(tmp_path_factory.mktemp("vllm"), "vllm")
    return out, caught["quantized"].ckpt


@needs_tiny
@needs_dev
@pytest.mark.slow
def test_cpu_target_is_the_int4_onnx_artifact_and_onnxruntime_runs_it(tmp_path):
    from asrquant.engines import open_engine

    out = export(tmp_path, "cpu")
    meta, text = card(out)
    manifest = verify(out)
    assert manifest["target"]["name"] == "cpu" and meta["library_name"] == "onnxruntime"
    assert "gptq-int4-g64-enc32-emb4" in text and "Calibration: 4 clips" in text
    info = manifest["variants"]["default"]
    assert info["recipe"]["name"] == "gptq-int4-g64-enc32-emb4"
    assert not info.get("smoothing"), "the cpu target exports without input smoothing"
    assert info["attention"] == {"encoder": "int8"}  # version 2: integer attention scores
    weights = sum(m["bytes"] for f, m in manifest["files"].items() if ".onnx" in f)
    assert weights < 0.30 * 75.5e6  # the graphs and weights: <= 0.30 x the float16 tiny.en
    engine = open_engine(str(out), threads=1)
    assert engine.engine.startswith("asrquant-onnx")


@needs_tiny
@needs_dev
@pytest.mark.slow
def test_vllm_target_reads_back_through_compressed_tensors(vllm_export):
    from asrquant.export.readers import read_compressed_tensors

    vllm_export, _ = vllm_export
    meta, _ = card(vllm_export)
    assert meta["library_name"] == "transformers" and "vllm" in meta["tags"]
    qc = json.loads((vllm_export / "config.json").read_text())["quantization_config"]
    (group,) = qc["config_groups"].values()
    assert group["weights"]["symmetric"] is True and group["weights"]["group_size"] == 128
    assert qc["format"] == "pack-quantized"
    rb = read_compressed_tensors(vllm_export)
    assert "model.encoder.layers.0.fc1" in rb.weights


@needs_tiny
@needs_dev
@needs_vitw8
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You passed `quantization_config`")
def test_vllm_target_in_transformers_transcribes_like_our_fake_quant_on_vitw8(vllm_export):
    """A real client of the format on CPU: transformers with CompressedTensorsConfig(run_compressed=False),
    greedy, against our torch runner on the fake-quant model the export was written from."""
    import torch
    transformers = pytest.importorskip("transformers")
    from transformers.utils.quantization_config import CompressedTensorsConfig

    from asrquant.audio import load_audio
    from asrquant.models.whisper.transcribe import WhisperGeneration, WhisperTranscriber  # noqa: F401

    out, ckpt = vllm_export
    clips = shortest_clips(8)
    ours = greedy_texts(ckpt, clips)
    hf = transformers.WhisperForConditionalGeneration.from_pretrained(
        out, quantization_config=CompressedTensorsConfig(run_compressed=False), dtype=torch.float32).eval()
    processor = transformers.WhisperProcessor.from_pretrained(out)
    theirs = []
    for c in clips:
        feats = processor(load_audio(VITW8.parent / c["audio"]), sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            ids = hf.generate(feats.input_features, do_sample=False, num_beams=1, max_new_tokens=200)
        theirs.append(processor.batch_decode(ids, skip_special_tokens=True)[0].strip())
    same = [a == b for a, b in zip(ours, theirs)]
    assert sum(same) >= 7, list(zip(ours, theirs))


@needs_tiny
@needs_dev
@pytest.mark.slow
def test_tensorrt_target_reads_back_as_nvfp4(tmp_path):
    from asrquant.export.readers import read_nvfp4

    out = export(tmp_path, "tensorrt")
    meta, text = card(out)
    assert "nvfp4" in meta["tags"] and "nvfp4-awq-lite" in text
    rb = read_nvfp4(out)
    assert "model.decoder.layers.0.fc2" in rb.weights


@needs_tiny
@needs_mlx
def test_mlx_target_reads_back_through_mlx(tmp_path):
    from asrquant.export.readers import read_mlx_with_mlx

    out = tmp_path / "mlx"
    assert main(["export", "whisper-tiny.en", "--target", "mlx", "--out", str(out), "--quiet"]) == 0
    meta, text = card(out)
    assert meta["library_name"] == "mlx" and "mixed-8attn-4mlp" in text
    rb = read_mlx_with_mlx(out)
    assert rb.weights


@needs_tiny
@needs_mlx
@needs_vitw8
@pytest.mark.slow
def test_eval_of_a_non_onnx_target_benches_the_fake_quant_beside_the_float_source(tmp_path):
    one = tmp_path / "one.jsonl"
    clip = shortest_clips(1)[0]
    one.write_text(json.dumps({**clip, "audio": str(VITW8.parent / clip["audio"])}) + "\n")
    out = tmp_path / "mlx"
    assert main(["export", "whisper-tiny.en", "--target", "mlx", "--eval", str(one), "--threads", "1",
                 "--out", str(out), "--quiet"]) == 0
    _, text = card(out)
    assert "## Measured against the float source" in text and "torch fake-quant" in text
    assert "| float source (`whisper-tiny.en`, torch fp32) | 75.5 |" in text
    assert not list(tmp_path.glob(".mlx*")), "the fake-quant copy or the staging was left behind"
