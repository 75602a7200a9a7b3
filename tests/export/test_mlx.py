"""MLX export: the files hold our codes, scales and zero points exactly; MLX itself
(``mx.dequantize``) and a reader written from MLX's definition give back the same weights, which
are ours bit for bit where MLX's ``scale * q + bias`` can be (float16/bfloat16-scale schemes
written with float32 storage, as the built-in mixed recipe is, and MXFP4) and within the rounding
of ``scale * q`` otherwise; the mixed recipe's per-layer block; refusals; transcripts through our
torch runner."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from format_fixtures import (
    greedy_tokens,
    needs_tiny,
    needs_vitw8,
    one_torch_thread,  # noqa: F401  (autouse)
    quantized_qwen,
    quantized_tiny,
    set_input_scale,
    shortest_clips,
    whisper_from_mlx_readback,
)

from asrquant.errors import AsrQuantError
from asrquant.export.command import export_format
from asrquant.export.hf_layout import family_info
from asrquant.export.mlx import exact_through_mlx, layer_arrays, layer_params
from asrquant.export.readers import read_mlx, read_mlx_with_mlx, unpack_mlx
from asrquant.quant.algorithms.rtn import rtn
from asrquant.quant.calibrate import quantized_weights
from asrquant.quant.qtensor import dequantize
from asrquant.quant.scheme import QuantScheme

mx = pytest.importorskip("mlx.core")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    if needs_tiny.args[0]:
        pytest.skip(needs_tiny.kwargs["reason"])
    ckpt, _ = quantized_tiny("mixed-8attn-4mlp")
    out = export_format("mlx", ckpt, tmp_path_factory.mktemp("mlx") / "tiny-mixed")
    return ckpt, out, read_mlx(out), read_mlx_with_mlx(out)


def close_to_ours(back: torch.Tensor, qw) -> bool:
    """MLX rounds ``scale * q`` and ``-zero * scale`` before adding them, we round once: each
    rounding is at most half a unit in the last place of ``scale * 2^bits``."""
    from asrquant.quant.qtensor import expand_groups

    scale = expand_groups(qw.scales, qw.group_len, qw.in_features)
    return bool(torch.all((back - dequantize(qw)).abs() <= scale * 2.0 ** (qw.scheme.bits - 22)))


@needs_tiny
def test_files_hold_our_codes_scales_and_zero_points(mixed):
    ckpt, out, *_ = mixed
    from safetensors.numpy import load_file

    arrays, fam = load_file(str(out / "weights.safetensors")), family_info(ckpt)
    for name, qw in quantized_weights(ckpt.model).items():
        m = fam.mlx.module(name)
        codes = unpack_mlx(arrays[f"{m}.weight"], qw.scheme.bits, qw.in_features)
        assert np.array_equal(codes, qw.codes.numpy()), name
        s = arrays[f"{m}.scales"]
        assert s.dtype == np.float32 and np.array_equal(s, qw.scales.numpy()), name
        assert np.array_equal(arrays[f"{m}.biases"], -qw.zero_points.numpy().astype(np.float32) * s), name


@needs_tiny
def test_mixed_recipe_through_mlx_itself_is_ours_bit_for_bit(mixed):
    """The built-in recipe's float16 scales, written as float32: every Linear that ``mx.dequantize``
    gives back equals our dequantized weight exactly, no tolerance."""
    ckpt, out, by_definition, by_mlx = mixed
    fam = family_info(ckpt)
    assert by_definition.weights.keys() == by_mlx.weights.keys()
    for k in by_mlx.weights:
        assert torch.equal(by_definition.weights[k], by_mlx.weights[k]), k
    qws = quantized_weights(ckpt.model)
    assert len(qws) == len(by_mlx.weights) == 64  # encoder 4 blocks x 6 Linears, decoder 4 x 10
    for name, qw in qws.items():
        assert qw.scheme.scale_dtype == "float16", name
        assert torch.equal(by_mlx.weights[fam.mlx.module(name)], dequantize(qw)), name
    assert json.loads((out / "manifest.json").read_text())["exact_through_mlx"] is True


@pytest.mark.parametrize("bits,group", [(2, 32), (3, 64), (4, 128), (5, 32), (6, 64), (8, 128), (8, -1)])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("scale_dtype", ["float16", "bfloat16"])
def test_half_precision_scale_schemes_are_ours_bit_for_bit_through_mlx(bits, group, symmetric, scale_dtype):
    g = torch.Generator().manual_seed(bits)
    qw = rtn(torch.randn(48, 384, generator=g) * 0.05, QuantScheme.int(bits, group, symmetric, scale_dtype))
    params = layer_params("w", qw)
    a = layer_arrays(qw, params, "float32")
    assert exact_through_mlx(qw, "float32")
    w = mx.dequantize(mx.array(a["weight"]), mx.array(a["scales"]), mx.array(a["biases"]),
                      group_size=params["group_size"], bits=bits)
    assert torch.equal(torch.from_numpy(np.array(w)), dequantize(qw))


def test_float16_storage_keeps_a_float16_schemes_scales_but_mlx_then_computes_in_float16():
    w = torch.randn(48, 384, generator=torch.Generator().manual_seed(0)) * 0.05
    qw = rtn(w, QuantScheme.int(4, 64, scale_dtype="float16"))
    params = layer_params("w", qw)
    a = layer_arrays(qw, params, "float16")
    assert a["scales"].dtype == np.float16 and np.array_equal(a["scales"].astype(np.float32), qw.scales.numpy())
    assert not exact_through_mlx(qw, "float16") and not exact_through_mlx(rtn(w, QuantScheme.int(4, 64)), "float32")
    w = mx.dequantize(mx.array(a["weight"]), mx.array(a["scales"]), mx.array(a["biases"]), group_size=64, bits=4)
    assert w.dtype == mx.float16  # MLX dequantizes in the scales' dtype: every weight rounded to float16


@needs_tiny
def test_int8_per_channel_and_mxfp4(tmp_path):
    for spec, exact in (("int8", False), ("mxfp4", True)):
        ckpt, _ = quantized_tiny(spec)
        out = export_format("mlx", ckpt, tmp_path / spec)
        rb, fam = read_mlx_with_mlx(out), family_info(ckpt)
        block = json.loads((out / "config.json").read_text())["quantization"]
        # one scale per 384- or 1536-input channel, written as repeated groups of 128
        assert block == ({"group_size": 128, "bits": 8, "mode": "affine"} if spec == "int8"
                         else {"group_size": 32, "bits": 4, "mode": "mxfp4"})
        for name, qw in quantized_weights(ckpt.model).items():
            back = rb.weights[fam.mlx.module(name)]
            assert torch.equal(back, dequantize(qw)) if exact else close_to_ours(back, qw), name


@needs_tiny
def test_mixed_recipe_block_has_a_default_and_per_layer_overrides(mixed):
    _, out, *_ = mixed
    config = json.loads((out / "config.json").read_text())
    block = config["quantization"]
    assert (block["group_size"], block["bits"], block["mode"]) == (64, 8, "affine")  # 48 attention Linears
    assert block["encoder.blocks.0.mlp1"] == {"group_size": 64, "bits": 4, "mode": "affine"}
    assert "decoder.blocks.3.mlp2" in block and "decoder.blocks.3.cross_attn.key" not in block
    assert config["model_type"] == "whisper" and config["n_audio_layer"] == 4


@needs_tiny
def test_what_mlx_cannot_hold_is_refused_naming_the_layer(tmp_path):
    one = '[[rules]]\nmatch = "encoder.blocks.0.mlp.fc1"\n'
    cases = [
        (one + "bits = 7\ngroup_size = 64\n", "has 2, 3, 4, 5, 6, 8 bits, not 7"),
        (one + "bits = 4\ngroup_size = 16\n", "group of 16 is not a multiple"),
        (one + 'format = "nvfp4"\n', "nvfp4 has no MLX form"),
    ]
    for spec, message in cases:
        ckpt, _ = quantized_tiny(spec)
        with pytest.raises(AsrQuantError, match=rf"encoder\.blocks\.0\.mlp\.fc1: .*{message}"):
            export_format("mlx", ckpt, tmp_path / "mlx")
    ckpt, _ = quantized_tiny("rtn-int4-g64")
    set_input_scale(ckpt.model, "decoder.blocks.0.attn.out")
    with pytest.raises(AsrQuantError, match=r"decoder\.blocks\.0\.attn\.out: .*AWQ input scale.*mlx has no"):
        export_format("mlx", ckpt, tmp_path / "mlx")
    assert not (tmp_path / "mlx").exists()


def test_qwen3_asr_text_model_quantized_audio_tower_kept_as_its_dequantized_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ASRQUANT_CACHE", str(tmp_path / "cache"))
    ckpt, _ = quantized_qwen(tmp_path / "qwen", "mixed-8attn-4mlp")
    out = export_format("mlx", ckpt, tmp_path / "mlx")
    rb, qws = read_mlx_with_mlx(out), quantized_weights(ckpt.model)
    for name, qw in qws.items():
        if name.startswith("audio_tower."):  # mlx-audio never quantizes the audio tower
            assert torch.equal(rb.tensors[f"thinker.{name}.weight"], dequantize(qw)), name
        else:  # float16 scales (the built-in recipe): bit for bit through MLX
            assert torch.equal(rb.weights[f"thinker.{name}"], dequantize(qw)), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert "audio_tower.layers.0.fc1" in manifest["float_dequantized"]
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "qwen3_asr" and config["quantization"]["bits"] == 8  # 8 attention, 6 MLP
    assert config["quantization"]["model.layers.1.mlp.up_proj"]["bits"] == 4
    assert "thinker.lm_head.weight" not in rb.tensors


def test_qwen3_asr_int4_float16_scales_through_mlx_itself_are_ours_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.setenv("ASRQUANT_CACHE", str(tmp_path / "cache"))
    spec = '[[rules]]\nbits = 4\ngroup_size = 32\nsymmetric = true\nscale_dtype = "float16"\n'
    ckpt, _ = quantized_qwen(tmp_path / "qwen", spec)
    out = export_format("mlx", ckpt, tmp_path / "mlx")
    rb, qws = read_mlx_with_mlx(out), quantized_weights(ckpt.model)
    text = {n: qw for n, qw in qws.items() if not n.startswith("audio_tower.")}
    assert text and len(rb.weights) == len(text)
    for name, qw in text.items():
        assert qw.scheme.name == "int4-g32-sym-fp16", name
        assert torch.equal(rb.weights[f"thinker.{name}"], dequantize(qw)), name
    assert json.loads((out / "manifest.json").read_text())["exact_through_mlx"] is True


@needs_tiny
@needs_vitw8
def test_read_back_model_transcribes_like_the_fake_quant_model(mixed):
    ckpt, _, _, by_mlx = mixed
    clips = shortest_clips(2)
    assert greedy_tokens(ckpt, whisper_from_mlx_readback(ckpt, by_mlx), clips) == greedy_tokens(ckpt, ckpt.model, clips)


@needs_tiny
def test_command_line_exports_and_refuses_onnx_only_options(tmp_path, capsys):
    from asrquant.cli import main

    out = tmp_path / "mlx"
    assert main(["export", "whisper-tiny.en", "--format", "mlx", "--recipe", "rtn-int4-g64", "--out", str(out),
                 "--quiet"]) == 0
    assert json.loads((out / "config.json").read_text())["quantization"] == {"group_size": 64, "bits": 4,
                                                                            "mode": "affine"}
    assert json.loads((out / "manifest.json").read_text())["recipe"]["name"] == "rtn-int4-g64"
    assert main(["export", "whisper-tiny.en", "--format", "mlx", "--recipe", "int8", "--variant", "a",
                 "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "--variant is an ONNX option" in capsys.readouterr().err
