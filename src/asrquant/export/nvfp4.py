"""NVFP4 checkpoints in the unified Hugging Face layout that NVIDIA Model Optimizer exports, for
TensorRT-LLM (and vLLM's ``modelopt_fp4``).

Per quantized Linear, under the family's Hugging Face names:

    weight           uint8 [out, in/2]  two E2M1 codes per byte, the even element in the low nibble
    weight_scale     float8_e4m3fn [out, in/16]  one scale per 16 inputs
    weight_scale_2   float32 scalar  the per-tensor scale, a multiplier
    pre_quant_scale  float32 [in]  only where an AWQ scale was not folded: the runtime computes
                     ``x * pre_quant_scale``; it is ``1 / input_scale``, the multiplier our
                     QuantLinear applies, so the product is the same float
    input_scale      float32 scalar  only when activation maxima are given (W4A4)

    w = e2m1(code) * (float32(weight_scale) * weight_scale_2)    -- our dequantize(), bit for bit

``hf_quant_config.json`` and ``config.json``'s ``quantization_config`` say which layers are what.
Our recipes quantize weights only, so a layer is ``W4A16_NVFP4`` (activations stay in high
precision) unless ``activation_amax`` gives the activation range a W4A4 ``NVFP4`` /
``NVFP4_AWQ`` layer needs; calibrating that range is not part of asrquant yet.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import __version__
from ..artifact import atomic_dir, write_manifest
from ..errors import AsrQuantError
from ..quant.linear import linear_names
from ..quant.numerics import E2M1_MAX, E4M3_MAX
from ..quant.qtensor import QuantizedWeight, pack_int
from ..quant.scheme import NVFP4_GROUP
from .hf_layout import (
    WEIGHTS_FILE,
    FamilyInfo,
    float_tensors,
    manifest_fields,
    require_quantized,
    write_config,
    write_support_files,
)

FORMAT = "nvfp4"
PRODUCER = {"name": "asrquant", "version": __version__}


def _check(name: str, qw: QuantizedWeight) -> None:
    if qw.scheme.format != "nvfp4":
        raise AsrQuantError(f"{name}: {qw.scheme.name} is not NVFP4; the nvfp4 checkpoint holds NVFP4 weights only "
                            "(use a recipe with format = \"nvfp4\" for every quantized layer, or another format)")
    if qw.in_features % NVFP4_GROUP:
        raise AsrQuantError(f"{name}: {qw.in_features} inputs are not a multiple of NVFP4's block of {NVFP4_GROUP}")


def layer_tensors(qw: QuantizedWeight, activation_amax: float | None) -> dict[str, Tensor]:
    t = {
        "weight": pack_int(qw.codes.contiguous(), 4),
        "weight_scale": qw.scales.contiguous().view(torch.float8_e4m3fn),
        "weight_scale_2": qw.global_scale.float().reshape(()).clone(),
    }
    if qw.input_scale is not None:
        t["pre_quant_scale"] = (1.0 / qw.input_scale.float()).contiguous()
    if activation_amax is not None:
        # Model Optimizer's activation scale: the input's amax over the top of E4M3 x E2M1.
        t["input_scale"] = torch.tensor(activation_amax / (E4M3_MAX * E2M1_MAX), dtype=torch.float32)
    return t


def layer_config(qw: QuantizedWeight, w4a4: bool) -> dict:
    """Model Optimizer's per-layer entry (the names its ``process_layer_quant_config`` writes)."""
    if qw.input_scale is None:
        return {"quant_algo": "NVFP4" if w4a4 else "W4A16_NVFP4", "group_size": NVFP4_GROUP}
    return {"quant_algo": "NVFP4_AWQ" if w4a4 else "W4A16_NVFP4", "group_size": NVFP4_GROUP,
            "has_zero_point": False, "pre_quant_scale": True}


def hf_quant_config(layers: dict[str, dict], excluded: list[str]) -> dict:
    """hf_quant_config.json: one quant_algo with the excluded modules, or MIXED_PRECISION with
    every quantized layer listed (as Model Optimizer writes them)."""
    quant: dict = {"kv_cache_quant_algo": None}
    distinct = {tuple(sorted(c.items())) for c in layers.values()}
    if len(distinct) == 1:
        quant.update(next(iter(layers.values())))
        quant["exclude_modules"] = sorted(excluded)
    else:
        quant.update({"quant_algo": "MIXED_PRECISION", "quantized_layers": layers})
    return {"producer": PRODUCER, "quantization": quant}


def config_quantization(hf_quant: dict) -> dict:
    """config.json's quantization_config: the same facts in the form Model Optimizer also writes
    there (``quant_method: modelopt``, ``ignore``)."""
    q = dict(hf_quant["quantization"])
    out = {"quant_method": "modelopt", "producer": PRODUCER, "quant_algo": q.pop("quant_algo")}
    if "exclude_modules" in q:
        out["ignore"] = q.pop("exclude_modules")
    out.update({k: v for k, v in q.items() if v is not None})
    return out


def write_nvfp4(model: nn.Module, family: FamilyInfo, qweights: dict[str, QuantizedWeight], out_dir: str | Path,
                recipe=None, activation_amax: dict[str, float] | None = None) -> Path:
    """Write the NVFP4 checkpoint of ``model`` to ``out_dir`` (atomically).

    ``activation_amax`` (our module name -> max |input|, measured after the AWQ multiplier) makes
    the layers W4A4; without it every layer is weight-only.
    """
    from safetensors.torch import save_file

    require_quantized(qweights, FORMAT)
    amax = activation_amax or {}
    names = {n: family.hf_module(n) for n in linear_names(model)}
    tensors = float_tensors(model, family, qweights)
    layers = {}
    for name, qw in qweights.items():
        _check(name, qw)
        for k, v in layer_tensors(qw, amax.get(name)).items():
            tensors[f"{names[name]}.{k}"] = v
        layers[names[name]] = layer_config(qw, name in amax)
    excluded = [names[n] for n in names if n not in qweights] + list(family.extra_float_linears)
    hf_quant = hf_quant_config(layers, excluded)
    config = dict(family.config)
    config["quantization_config"] = config_quantization(hf_quant)
    with atomic_dir(out_dir) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        write_config(tmp, config)
        (tmp / "hf_quant_config.json").write_text(json.dumps(hf_quant, indent=2) + "\n", encoding="utf-8")
        write_support_files(family, tmp)
        write_manifest(tmp, **manifest_fields(FORMAT, family, qweights, recipe, names))
    return Path(out_dir)
