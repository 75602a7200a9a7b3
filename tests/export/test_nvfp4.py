"""NVFP4 export in Model Optimizer's unified Hugging Face layout: a reader written from the
format's definition gives back our dequantized weights bit for bit, an AWQ scale that was not
folded travels as ``pre_quant_scale`` (the very multiplier our QuantLinear applies), the
quantization config says what each layer is, and the read-back model transcribes as the
fake-quant one."""

from __future__ import annotations

import json

import pytest
import torch
from format_fixtures import (
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

from asrquant.errors import AsrQuantError
from asrquant.export.command import export_format
from asrquant.export.hf_layout import family_info
from asrquant.export.readers import read_nvfp4
from asrquant.quant.calibrate import quantized_weights
from asrquant.quant.qtensor import dequantize

AWQ_LAYERS = ("decoder.blocks.0.attn.out", "encoder.blocks.2.mlp.fc2")


@pytest.fixture(scope="module")
def tiny_awq(tmp_path_factory):
    """tiny.en in NVFP4 with AWQ input scales left on two Linears (as calibration leaves them on
    Linears fed by no LayerNorm)."""
    if needs_tiny.args[0]:
        pytest.skip(needs_tiny.kwargs["reason"])
    ckpt, _ = quantized_tiny(NVFP4_RTN)
    for i, name in enumerate(AWQ_LAYERS):
        set_input_scale(ckpt.model, name, seed=i)
    out = export_format("nvfp4", ckpt, tmp_path_factory.mktemp("nvfp4") / "tiny")
    return ckpt, out, read_nvfp4(out)


@needs_tiny
def test_weights_read_back_bit_for_bit(tiny_awq):
    ckpt, out, rb = tiny_awq
    fam, qws = family_info(ckpt), quantized_weights(ckpt.model)
    assert len(qws) == 64 and set(rb.weights) == {fam.hf_module(n) for n in qws}
    for name, qw in qws.items():
        assert torch.equal(rb.weights[fam.hf_module(name)], dequantize(qw)), name
    ours = fam.hf_state_dict(ckpt.model)
    assert all(torch.equal(v.float(), ours[k].float()) for k, v in rb.tensors.items())
    from safetensors.torch import load_file

    t = load_file(str(out / "model.safetensors"))
    h = "model.encoder.layers.0.fc1"
    assert (t[f"{h}.weight"].dtype, tuple(t[f"{h}.weight"].shape)) == (torch.uint8, (1536, 192))
    assert (t[f"{h}.weight_scale"].dtype, tuple(t[f"{h}.weight_scale"].shape)) == (torch.float8_e4m3fn, (1536, 24))
    assert t[f"{h}.weight_scale_2"].dtype == torch.float32 and t[f"{h}.weight_scale_2"].dim() == 0


@needs_tiny
def test_unfolded_awq_scale_is_the_fake_quant_multiplier(tiny_awq):
    ckpt, out, rb = tiny_awq
    fam = family_info(ckpt)
    assert set(rb.input_scales) == {fam.hf_module(n) for n in AWQ_LAYERS}
    for name in AWQ_LAYERS:
        assert torch.equal(rb.input_scales[fam.hf_module(name)], ckpt.model.get_submodule(name).inv_input_scale)
    quant = json.loads((out / "hf_quant_config.json").read_text())["quantization"]
    assert quant["quant_algo"] == "MIXED_PRECISION"
    layers = quant["quantized_layers"]
    assert layers["model.decoder.layers.0.self_attn.out_proj"] == {
        "quant_algo": "W4A16_NVFP4", "group_size": 16, "has_zero_point": False, "pre_quant_scale": True}
    assert layers["model.encoder.layers.0.fc1"] == {"quant_algo": "W4A16_NVFP4", "group_size": 16}
    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "modelopt" and qc["quant_algo"] == "MIXED_PRECISION"


@needs_tiny
def test_uniform_model_excludes_what_stays_float_and_activation_ranges_make_it_w4a4(tmp_path):
    ckpt, _ = quantized_tiny(NVFP4_RTN)
    out = export_format("nvfp4", ckpt, tmp_path / "w4a16")
    quant = json.loads((out / "hf_quant_config.json").read_text())["quantization"]
    assert quant == {"kv_cache_quant_algo": None, "quant_algo": "W4A16_NVFP4", "group_size": 16,
                     "exclude_modules": ["proj_out"]}
    amax = {n: 2.0 for n in quantized_weights(ckpt.model)}
    out = export_format("nvfp4", ckpt, tmp_path / "w4a4", activation_amax=amax)
    quant = json.loads((out / "hf_quant_config.json").read_text())["quantization"]
    assert quant["quant_algo"] == "NVFP4"
    from safetensors.torch import load_file

    scale = load_file(str(out / "model.safetensors"))["model.decoder.layers.1.fc2.input_scale"]
    assert scale.item() == pytest.approx(2.0 / (448 * 6))


@needs_tiny
def test_a_layer_in_another_scheme_is_refused_naming_it(tmp_path):
    int4_mlp = '[[rules]]\nkind = "mlp"\nbits = 4\ngroup_size = 64\n\n'
    ckpt, _ = quantized_tiny(int4_mlp + NVFP4_RTN)
    with pytest.raises(AsrQuantError, match=r"encoder\.blocks\.0\.mlp\.fc1: int4-g64-asym is not NVFP4"):
        export_format("nvfp4", ckpt, tmp_path / "nv")
    assert not (tmp_path / "nv").exists()


def test_qwen3_asr_reads_back_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.setenv("ASRQUANT_CACHE", str(tmp_path / "cache"))
    ckpt, _ = quantized_qwen(tmp_path / "qwen", NVFP4_RTN)
    set_input_scale(ckpt.model, "model.layers.1.mlp.down_proj")
    out = export_format("nvfp4", ckpt, tmp_path / "nv")
    rb, fam, qws = read_nvfp4(out), family_info(ckpt), quantized_weights(ckpt.model)
    assert "thinker.audio_tower.proj2" in rb.weights and "thinker.model.layers.1.self_attn.o_proj" in rb.weights
    for name, qw in qws.items():
        assert torch.equal(rb.weights[fam.hf_module(name)], dequantize(qw)), name
    assert torch.equal(rb.input_scales["thinker.model.layers.1.mlp.down_proj"],
                       ckpt.model.get_submodule("model.layers.1.mlp.down_proj").inv_input_scale)
    quant = json.loads((out / "hf_quant_config.json").read_text())["quantization"]
    assert "thinker.model.layers.0.self_attn.q_proj" in quant["quantized_layers"]


@needs_tiny
@needs_vitw8
def test_read_back_model_transcribes_like_the_fake_quant_model(tiny_awq):
    ckpt, _, rb = tiny_awq
    clips = shortest_clips(2)
    assert greedy_tokens(ckpt, whisper_from_hf_readback(ckpt, rb), clips) == greedy_tokens(ckpt, ckpt.model, clips)
