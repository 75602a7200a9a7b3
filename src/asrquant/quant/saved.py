"""The saved quantized format (``asrquant quantize --out DIR``), the same for every family.

The directory (written atomically, verified on load):

    config.json          kind "asrquant-quantized", family, the family's own settings (see the
                         family's ``saved.config``), source model and its sha256
    model.safetensors    float tensors kept as they are (LayerNorms carry folded AWQ scales) and,
                         per quantized Linear or embedding table N: N.qweight.{codes,scales,
                         zero_points,global_scale,input_scale} (codes packed along the input axis)
    quantization.json    recipe, the scheme of every quantized tensor, the report, and the
                         calibration clips (manifest, ids, audio sha256) so a bench can refuse
                         to evaluate on them
    tokenizer.json       (+ the family's other support files)
    manifest.json        sha256 of every file

A family's ``saved`` module supplies what differs: its config, the tensors beyond the state
dict (or left out of it), its support files, and how the model is rebuilt from the tensors.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .. import families
from ..artifact import atomic_dir, read_json, sort_safetensors_metadata, verify, write_manifest
from ..errors import ArtifactError
from ..weights import check_finite
from .calibrate import Calibration, QuantReport, quantized_weights
from .linear import QuantEmbedding, QuantLinear
from .qtensor import QuantizedWeight, pack_int, unpack_int
from .recipe import Recipe, recipe_from_dict
from .scheme import QuantScheme

KIND = families.SAVED_KIND
WEIGHTS = "model.safetensors"
# Bumped when what a saved directory holds changes, so caches keyed on it are rebuilt
# (2: the Whisper encoder positions' rounding is recorded).
SAVED_VERSION = 2


@dataclass
class QuantizedModel:
    ckpt: object  # the family's checkpoint; its model holds QuantLinears
    recipe: Recipe
    report: QuantReport | dict
    calibration: Calibration | None


def packed(qw: QuantizedWeight) -> dict[str, torch.Tensor]:
    t = dict(qw.tensors())
    t["codes"] = pack_int(qw.codes.contiguous(), qw.scheme.bits)
    return {k: v.contiguous() for k, v in t.items()}


def compact(t: torch.Tensor) -> torch.Tensor:
    """float16 where that is lossless (checkpoints shipped in half precision), else as is."""
    t = t.detach().cpu()
    if t.dtype == torch.float32 and torch.equal(t.half().float(), t):
        return t.half().contiguous()
    return t.contiguous()


def model_tensors(model: torch.nn.Module, skip: set[str] = frozenset()) -> dict[str, torch.Tensor]:
    """The state dict less ``skip`` and less what quantized modules derive from their codes (the
    dequantized ``weight`` cache, ``inv_input_scale``), plus every quantized tensor packed."""
    qweights = quantized_weights(model)
    tensors = {}
    for name, value in model.state_dict().items():
        module = name.rsplit(".", 1)[0]
        if name in skip or (module in qweights and name.endswith((".weight", ".inv_input_scale"))):
            continue
        tensors[name] = compact(value.detach())
    for name, qw in qweights.items():
        tensors.update({f"{name}.qweight.{k}": v for k, v in packed(qw).items()})
    return tensors


def _module_kind(model: torch.nn.Module, name: str) -> str:
    return "embedding" if isinstance(model.get_submodule(name), QuantEmbedding) else "linear"


def save_quantized(qm: QuantizedModel, out: str | Path) -> Path:
    ckpt, model = qm.ckpt, qm.ckpt.model
    saved = families.module(ckpt.family, "saved")
    qweights = quantized_weights(model)
    config = {"kind": KIND, "family": ckpt.family, **saved.config(ckpt),
              "source": ckpt.source, "source_sha256": ckpt.source_sha256}
    quantization = {
        "recipe": qm.recipe.to_dict(),
        "tensors": {name: {**qw.scheme.to_dict(), "shape": list(qw.shape), "module": _module_kind(model, name)}
                    for name, qw in qweights.items()},
        "report": qm.report.to_dict() if isinstance(qm.report, QuantReport) else qm.report,
        "calibration": qm.calibration.to_dict() if qm.calibration else None,
    }
    with atomic_dir(out) as tmp:
        save_file(saved.tensors(model), str(tmp / WEIGHTS), metadata={"format": "pt", "kind": KIND})
        sort_safetensors_metadata(tmp / WEIGHTS)  # the same weights, the same sha256
        (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n")
        (tmp / "quantization.json").write_text(json.dumps(quantization, indent=1) + "\n")
        for name, path in saved.support_files(ckpt).items():
            shutil.copyfile(path, tmp / name)
        write_manifest(tmp, kind=KIND, family=ckpt.family, source=ckpt.source, source_sha256=ckpt.source_sha256,
                       recipe=qm.recipe.name)
    return Path(out)


def quantized_module(name: str, meta: dict, tensors: dict, bias, where: Path) -> QuantLinear | QuantEmbedding:
    """The quantized module ``name`` rebuilt from its packed tensors and its scheme entry."""
    meta = dict(meta)
    shape = tuple(meta.pop("shape"))
    module = meta.pop("module", "linear")
    scheme = QuantScheme.from_dict(meta)
    parts = {k.rsplit(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{name}.qweight.")}
    if "codes" not in parts:
        raise ArtifactError(f"{where}: no codes for quantized layer {name}")
    parts["codes"] = unpack_int(parts["codes"], scheme.bits, shape[1])
    qw = QuantizedWeight.from_tensors(parts, scheme)
    return QuantEmbedding(qw) if module == "embedding" else QuantLinear(qw, bias)


def load_quantized(path: str | Path) -> QuantizedModel:
    path = Path(path)
    family = families.saved_family(path)
    if family is None:
        raise ArtifactError(f"{path / 'config.json'}: not a directory saved by asrquant quantize")
    verify(path)
    config = read_json(path / "config.json")
    quantization = read_json(path / "quantization.json")
    weights = path / WEIGHTS
    try:
        tensors = load_file(str(weights))
    except Exception as e:  # safetensors raises its own error types for a garbled header
        raise ArtifactError(f"{weights}: not a readable safetensors file ({e})") from None
    check_finite(tensors, str(weights))
    ckpt = families.module(family, "saved").build(path, config, quantization["tensors"], tensors)
    recipe = recipe_from_dict(quantization["recipe"], source=str(path / "quantization.json"))
    cal = quantization.get("calibration")
    return QuantizedModel(ckpt, recipe, quantization["report"], Calibration(**cal) if cal else None)
