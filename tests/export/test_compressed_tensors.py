"""compressed-tensors export: what the library's own decompression gives back is our dequantized
weights (bit for bit for the int schemes and MXFP4; for NVFP4 codes and scales exactly and the
weights to the last float32 bit, see the module doc), the quantization_config vLLM reads, and the
same greedy tokens through our torch runner as the fake-quant model."""

from __future__ import annotations

import json

import pytest
import torch
from format_fixtures import (
    INT4_SYM_G128,
    NVFP4_RTN,
    greedy_tokens,
    needs_tiny,
    needs_vitw8,
    one_torch_thread,  # noqa: F401  (autouse)
    quantized_qwen,
    quantized_tiny,
    set_input_scale,
    shortest_clips,
    whisper_from_hf_readback,
)

from asrquant.errors import ArtifactError, AsrQuantError
from asrquant.export.command import export_format
from asrquant.export.hf_layout import family_info
from asrquant.export.readers import read_compressed_tensors
from asrquant.quant.calibrate import quantized_weights
from asrquant.quant.qtensor import dequantize

pytest.importorskip("compressed_tensors")


def _round_trip(ckpt, out):
    export_format("compressed-tensors", ckpt, out)
    return read_compressed_tensors(out), family_info(ckpt), quantized_weights(ckpt.model)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    if needs_tiny.args[0]:
        pytest.skip(needs_tiny.kwargs["reason"])
    ckpt, _ = quantized_tiny("mixed-8attn-4mlp")
    out = tmp_path_factory.mktemp("ct") / "tiny-mixed"
    return ckpt, out, *_round_trip(ckpt, out)


@needs_tiny
def test_mixed_int_recipe_reads_back_bit_for_bit(mixed):
    ckpt, out, rb, fam, qws = mixed
    assert len(qws) == 64
    for name, qw in qws.items():
        assert torch.equal(rb.weights[fam.hf_module(name)], dequantize(qw)), name
    # every other tensor is the model's own (LayerNorms, biases, embeddings), by Hugging Face name
    ours = fam.hf_state_dict(ckpt.model)
    assert rb.tensors and all(torch.equal(v.float(), ours[k].float()) for k, v in rb.tensors.items())
    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors" and qc["format"] == "pack-quantized"
    groups = {g["weights"]["num_bits"]: g for g in qc["config_groups"].values()}
    assert set(groups) == {4, 8}
    assert "model.encoder.layers.0.fc1" in groups[4]["targets"]
    assert "model.decoder.layers.3.encoder_attn.v_proj" in groups[8]["targets"]
    assert groups[4]["weights"]["strategy"] == "group" and groups[4]["weights"]["symmetric"] is False
    assert qc["ignore"] == ["proj_out"]  # every Linear of the HF class is quantized or ignored


@needs_tiny
def test_float16_scales_are_stored_as_float16_and_named_in_the_config(mixed):
    """The built-in mixed recipe has float16 scales: the file holds them in float16 exactly, the
    config carries the library's own ``scale_dtype``; the library's decompression as stored is in
    float16, and is our weight rounded once to float16."""
    from compressed_tensors.compressors import BaseCompressor
    from compressed_tensors.quantization import QuantizationScheme

    _, out, _, fam, qws = mixed
    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    assert {g["weights"]["scale_dtype"] for g in qc["config_groups"].values()} == {"torch.float16"}
    scheme = QuantizationScheme.model_validate(next(g for g in qc["config_groups"].values()
                                                    if g["weights"]["num_bits"] == 4))
    compressor = BaseCompressor.get_value_from_registry(scheme.format)
    for name, qw in qws.items():
        h = fam.hf_module(name)
        stored = _stored(out, f"{h}.weight_scale")
        assert stored.dtype == torch.float16 and torch.equal(stored.float(), qw.scales), name
        if qw.scheme.bits == 4:
            local = {k: _stored(out, f"{h}.{k}") for k in compressor.compression_param_names(scheme)}
            as_stored = compressor.decompress(local, scheme)["weight"]
            assert as_stored.dtype == torch.float16 and torch.equal(as_stored, dequantize(qw).half()), name


def _stored(out, key: str) -> torch.Tensor:
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        return f.get_tensor(key)


@needs_tiny
@pytest.mark.filterwarnings("ignore:You passed `quantization_config`")
@pytest.mark.parametrize("spec", ["int8", INT4_SYM_G128], ids=["int8-channel-sym", "int4-g128-sym"])
def test_symmetric_and_per_channel_read_back_bit_for_bit(spec, tmp_path):
    ckpt, _ = quantized_tiny(spec)
    rb, fam, qws = _round_trip(ckpt, tmp_path / "ct")
    for name, qw in qws.items():
        assert torch.equal(rb.weights[fam.hf_module(name)], dequantize(qw)), name
    w = next(iter(json.loads((tmp_path / "ct" / "config.json").read_text())["quantization_config"]
                  ["config_groups"].values()))["weights"]
    assert w["symmetric"] is True and w["strategy"] == ("channel" if spec == "int8" else "group")
    # transformers' own compressed-tensors loading finds every tensor by its name in the HF class
    # (it decompresses every dense layer with the first config group, so a mixed recipe is vLLM's),
    # in the scales' dtype: the built-in int8's float16 scales give ours rounded once to float16
    transformers = pytest.importorskip("transformers")
    from transformers.utils.quantization_config import CompressedTensorsConfig

    hf = transformers.WhisperForConditionalGeneration.from_pretrained(
        tmp_path / "ct", quantization_config=CompressedTensorsConfig(dequantize=True), dtype=torch.float32)
    sd = hf.state_dict()
    for name, qw in qws.items():
        in_scale_dtype = dequantize(qw).to(qw.scheme.scale_torch_dtype).float()
        assert torch.equal(sd[f"{fam.hf_module(name)}.weight"], in_scale_dtype), name


@needs_tiny
def test_nvfp4_codes_and_scales_exact_weights_to_the_last_bits(tmp_path):
    from compressed_tensors.compressors.nvfp4.helpers import unpack_fp4_from_uint8
    from safetensors.torch import load_file

    ckpt, _ = quantized_tiny(NVFP4_RTN)
    rb, fam, qws = _round_trip(ckpt, tmp_path / "ct")
    assert json.loads((tmp_path / "ct" / "config.json").read_text())["quantization_config"]["format"] == \
        "nvfp4-pack-quantized"
    rb32 = read_compressed_tensors(tmp_path / "ct", fp4_float32=True)
    tensors = load_file(str(tmp_path / "ct" / "model.safetensors"))
    e2m1 = torch.tensor([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6])
    exact = 0
    for name, qw in qws.items():
        h = fam.hf_module(name)
        values = unpack_fp4_from_uint8(tensors[f"{h}.weight_packed"], *qw.shape, dtype=torch.float32)
        assert torch.equal(values, e2m1[qw.codes.long()]), name
        assert torch.equal(tensors[f"{h}.weight_scale"].view(torch.uint8), qw.scales), name
        # vLLM inverts the stored divisor into the multiplier: ours exactly where a float32 divisor
        # with that reciprocal exists, else the nearest
        back = (1.0 / tensors[f"{h}.weight_global_scale"]).reshape(())
        exact += torch.equal(back, qw.global_scale)
        assert (back - qw.global_scale).abs() <= qw.global_scale * 2.0**-23, name
        # the library's own arithmetic divides by it: within two float32 roundings of ours
        ours = dequantize(qw)
        assert torch.all((rb32.weights[h] - ours).abs() <= ours.abs() * 2.0**-22), name
        assert rb.weights[h].dtype == torch.bfloat16  # what its decompress returns
    assert exact >= len(qws) // 2


def test_qwen3_asr_int4_and_mxfp4_read_back_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.setenv("ASRQUANT_CACHE", str(tmp_path / "cache"))
    for spec in ("rtn-int4-g64", "mxfp4"):
        ckpt, _ = quantized_qwen(tmp_path / f"qwen-{spec}", spec)
        rb, fam, qws = _round_trip(ckpt, tmp_path / f"ct-{spec}")
        assert "thinker.model.layers.0.mlp.down_proj" in rb.weights
        assert "thinker.audio_tower.layers.1.fc2" in rb.weights
        for name, qw in qws.items():
            assert torch.equal(rb.weights[fam.hf_module(name)].float(), dequantize(qw)), (spec, name)
        assert "thinker.lm_head.weight" not in rb.tensors  # tied to the embedding
        ignore = json.loads((tmp_path / f"ct-{spec}" / "config.json").read_text())["quantization_config"]["ignore"]
        assert "thinker.lm_head" in ignore


@needs_tiny
def test_unfolded_awq_scale_and_short_group_are_refused_naming_the_layer(tmp_path, monkeypatch):
    ckpt, _ = quantized_tiny("rtn-int4-g64")
    set_input_scale(ckpt.model, "decoder.blocks.1.mlp.fc2")
    with pytest.raises(AsrQuantError,
                       match=r"decoder\.blocks\.1\.mlp\.fc2: int4-g64-asym-fp16 with an AWQ input scale"):
        export_format("compressed-tensors", ckpt, tmp_path / "ct")
    assert not (tmp_path / "ct").exists()  # nothing half written
    short = '[[rules]]\nmatch = "encoder.blocks.0.attn.query"\nbits = 4\ngroup_size = 100\n'
    with pytest.raises(AsrQuantError, match=r"rules\[0\]\.group_size: 100 does not divide the input width 384"):
        quantized_tiny(short)  # refused by the recipe check before quantizing
    # A model quantized without that check (older versions, or by hand) still meets the writer's own.
    monkeypatch.setattr("asrquant.quant.calibrate.check_recipe_fits", lambda model, recipe: None)
    ckpt, _ = quantized_tiny(short)
    with pytest.raises(AsrQuantError, match=r"encoder\.blocks\.0\.attn\.query: int4-g100-asym on 384 inputs"):
        export_format("compressed-tensors", ckpt, tmp_path / "ct")


@needs_tiny
def test_tampered_checkpoint_is_refused_naming_the_file(mixed, tmp_path):
    import shutil

    _, out, *_ = mixed
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with open(copy / "model.safetensors", "r+b") as f:
        f.seek(-8, 2)
        f.write(b"\x00" * 8)
    with pytest.raises(ArtifactError, match="model.safetensors"):
        read_compressed_tensors(copy)


@needs_tiny
@needs_vitw8
def test_decompressed_model_transcribes_like_the_fake_quant_model(mixed):
    ckpt, _, rb, *_ = mixed
    clips = shortest_clips(2)
    assert greedy_tokens(ckpt, whisper_from_hf_readback(ckpt, rb), clips) == greedy_tokens(ckpt, ckpt.model, clips)


def test_command_line_exports_a_qwen3_asr_directory(tmp_path, monkeypatch, capsys):
    from models.qwen3_asr.qwen3_asr_fixture import small_dims, write_random_checkpoint

    from asrquant.cli import main

    monkeypatch.setenv("ASRQUANT_CACHE", str(tmp_path / "cache"))
    write_random_checkpoint(tmp_path / "qwen", small_dims(), seed=0, shards=2)
    out = tmp_path / "ct"
    assert main(["export", str(tmp_path / "qwen"), "--format", "compressed-tensors", "--recipe", "rtn-int4-g64",
                 "--out", str(out), "--quiet"]) == 0
    rb = read_compressed_tensors(out)
    assert "thinker.model.layers.1.mlp.up_proj" in rb.weights
    assert (out / "vocab.json").is_file() and (out / "tokenizer_config.json").is_file()
    assert main(["export", str(tmp_path / "qwen"), "--format", "nvfp4", "--recipe", "gptq-int4-g64",
                 "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "give --calib MANIFEST" in capsys.readouterr().err  # GPTQ on Qwen3-ASR calibrates on audio, as on Whisper
