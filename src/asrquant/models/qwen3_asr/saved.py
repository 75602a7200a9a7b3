"""Qwen3-ASR quantized by a recipe, saved in asrquant's own format and read back.

The directory is the one :mod:`asrquant.models.whisper.saved` writes for Whisper, with the family's config:

    config.json          kind "asrquant-quantized", family "qwen3-asr", the checkpoint's own
                         Hugging Face config.json under "hf_config" (the model is rebuilt from
                         it), the Mega-ASR variant, source model and its sha256
    model.safetensors    float tensors as they are and, per quantized Linear N,
                         N.qweight.{codes,scales,...}; a tied lm_head is not stored twice
    quantization.json    recipe, the scheme of every quantized tensor, the report, calibration
                         clips (manifest, ids, audio sha256)
    tokenizer.json       (+ the checkpoint's other tokenizer / processor files)
    manifest.json        sha256 of every file

Mega-ASR's audio-quality router is not part of the saved model: it picks between two sets of
weights per clip, and a quantized model is one set.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ...artifact import atomic_dir, verify, write_manifest
from ...quant.calibrate import QuantReport, quantize_model, quantized_weights
from ...errors import ArtifactError, AsrQuantError
from ...quant.linear import QuantLinear
from ...quant.qtensor import QuantizedWeight, unpack_int
from ...quant.recipe import Recipe, load_recipe, recipe_from_dict
from ...quant.scheme import QuantScheme
from .model import Qwen3ASR, Qwen3ASRDims
from .load import Qwen3ASRCheckpoint, is_qwen3_asr_source, load_qwen3_asr
from .tokenizer import Qwen3ASRTokenizer

FAMILY = "qwen3-asr"
# Tokenizer and processor files of the checkpoint kept beside the weights (formats read them).
SUPPORT_FILES = ("tokenizer_config.json", "vocab.json", "merges.txt", "chat_template.json",
                 "preprocessor_config.json", "generation_config.json", "special_tokens_map.json")


@dataclass
class QuantizedQwen3ASR:
    ckpt: Qwen3ASRCheckpoint  # its model holds QuantLinears
    recipe: Recipe
    report: QuantReport | dict
    calibration: object | None  # asrquant.models.whisper.saved.Calibration


# ---- which specs are Qwen3-ASR ---------------------------------------------------------------

def saved_family(path: Path) -> str | None:
    """The family of a directory saved by ``asrquant quantize`` (None for anything else)."""
    from ..whisper.saved import KIND

    cfg = Path(path) / "config.json"
    try:
        data = json.loads(cfg.read_text()) if cfg.is_file() else {}
    except (OSError, ValueError):
        return None
    return data.get("family", "whisper") if isinstance(data, dict) and data.get("kind") == KIND else None


def is_qwen3_asr_spec(spec: str | Path) -> bool:
    """A Qwen3-ASR / Mega-ASR checkpoint directory, a quantized Qwen3-ASR directory, or either as
    ``DIR@RECIPE`` — judged from the directory's config, never from its name."""
    path = Path(spec)
    if not path.exists():
        model, sep, recipe = str(spec).rpartition("@")
        if not (sep and model and recipe):
            return False
        path = Path(model)
    return path.is_dir() and (saved_family(path) == FAMILY or is_qwen3_asr_source(path))


# ---- quantizing -------------------------------------------------------------------------------

TABLE = "model.embed_tokens"  # the token table; its tied lm_head reads the same Parameter


def quantize_qwen3_asr(spec: str, recipe: str | Recipe, calib: str | Path | None = None,
                       progress: bool = True) -> QuantizedQwen3ASR:
    from .calib_data import calibration_samples

    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    if recipe.needs_calibration and calib is None:
        raise AsrQuantError(f"recipe {recipe.name!r} calibrates on audio: give --calib MANIFEST")
    if recipe.embedding_rule_for(TABLE) is not None:  # refused before loading a model of billions of weights
        raise AsrQuantError(f"recipe {recipe.name!r}: its [embedding] matches {TABLE}; Qwen3-ASR's token table "
                            f"stays float (the saved format and the exporters do not carry a quantized one yet)")
    ckpt = load_qwen3_asr(spec)
    samples, cal = None, None
    if calib is not None:
        samples, cal = calibration_samples(ckpt, calib, recipe.clips or 32, progress)
    report = quantize_model(ckpt.model, recipe, samples, progress=progress)
    return QuantizedQwen3ASR(ckpt, recipe, report, cal)


# ---- saving -----------------------------------------------------------------------------------

def hf_config(ckpt: Qwen3ASRCheckpoint) -> dict:
    """The checkpoint's Hugging Face config.json (kept in ``extra`` once the model was saved by us)."""
    if "hf_config" in ckpt.extra:
        return ckpt.extra["hf_config"]
    return json.loads((ckpt.model_dir / "config.json").read_text(encoding="utf-8"))


def _is_tied(model: Qwen3ASR) -> bool:
    return isinstance(model.lm_head, torch.nn.Linear) and model.lm_head.weight is model.model.embed_tokens.weight


def saved_tensors(model: Qwen3ASR) -> dict[str, torch.Tensor]:
    """What model.safetensors holds: float tensors (less the dequantized caches of quantized
    Linears and a tied head) and the packed quantized weights."""
    from ..whisper.saved import _compact, _packed

    qweights = quantized_weights(model)
    skip = {"lm_head.weight"} if _is_tied(model) else set()
    tensors = {}
    for name, value in model.state_dict().items():
        module = name.rsplit(".", 1)[0]
        if name in skip or (module in qweights and name.endswith((".weight", ".inv_input_scale"))):
            continue
        tensors[name] = _compact(value.detach())
    for name, qw in qweights.items():
        tensors.update({f"{name}.qweight.{k}": v for k, v in _packed(qw).items()})
    return tensors


def _module_kind(model: Qwen3ASR, name: str) -> str:
    return "linear" if isinstance(model.get_submodule(name), QuantLinear) else "embedding"


def save_quantized_qwen3_asr(qm: QuantizedQwen3ASR, out: str | Path) -> Path:
    from ..whisper.saved import KIND

    ckpt, model = qm.ckpt, qm.ckpt.model
    qweights = quantized_weights(model)
    config = {"kind": KIND, "family": FAMILY, "variant": ckpt.variant, "hf_config": hf_config(ckpt),
              "source": ckpt.source, "source_sha256": ckpt.source_sha256}
    quantization = {
        "recipe": qm.recipe.to_dict(),
        "tensors": {name: {**qw.scheme.to_dict(), "shape": list(qw.shape), "module": _module_kind(model, name)}
                    for name, qw in qweights.items()},
        "report": qm.report.to_dict() if isinstance(qm.report, QuantReport) else qm.report,
        "calibration": qm.calibration.to_dict() if qm.calibration else None,
    }
    with atomic_dir(out) as tmp:
        save_file(saved_tensors(model), str(tmp / "model.safetensors"), metadata={"format": "pt", "kind": KIND})
        (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n")
        (tmp / "quantization.json").write_text(json.dumps(quantization, indent=1) + "\n")
        shutil.copyfile(ckpt.tokenizer_json, tmp / "tokenizer.json")
        for name in SUPPORT_FILES:
            if (ckpt.model_dir / name).is_file():
                shutil.copyfile(ckpt.model_dir / name, tmp / name)
        write_manifest(tmp, kind=KIND, family=FAMILY, source=ckpt.source, source_sha256=ckpt.source_sha256,
                       recipe=qm.recipe.name)
    return Path(out)


# ---- loading ----------------------------------------------------------------------------------

def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{path}: cannot read ({e})") from None


def _quant_linear(name: str, meta: dict, tensors: dict, bias, where: Path) -> QuantLinear:
    meta = dict(meta)
    if meta.pop("module", "linear") != "linear":
        raise ArtifactError(f"{where}: {name} is a quantized embedding table, which Qwen3-ASR does not load yet")
    shape = tuple(meta.pop("shape"))
    scheme = QuantScheme.from_dict(meta)
    parts = {k.rsplit(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{name}.qweight.")}
    if "codes" not in parts:
        raise ArtifactError(f"{where}: no codes for quantized layer {name}")
    parts["codes"] = unpack_int(parts["codes"], scheme.bits, shape[1])
    return QuantLinear(QuantizedWeight.from_tensors(parts, scheme), bias)


def build_model(dims: Qwen3ASRDims, tensors: dict, schemes: dict, where: Path) -> Qwen3ASR:
    """The fake-quant model from the saved tensors, built on the meta device (no random init)."""
    with torch.device("meta"):
        model = Qwen3ASR(dims)
    plain = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items() if ".qweight." not in k}
    for name, meta in schemes.items():
        parent, _, attr = name.rpartition(".")
        if not isinstance(model.get_submodule(name), torch.nn.Linear):
            raise ArtifactError(f"{where}: quantized tensor {name} is not a Linear of Qwen3-ASR")
        setattr(model.get_submodule(parent), attr, _quant_linear(name, meta, tensors, plain.pop(f"{name}.bias", None), where))
    tied = _is_tied(model)
    missing, unexpected = model.load_state_dict(plain, strict=False, assign=True)
    if tied:
        model.lm_head.weight = model.model.embed_tokens.weight
    quantized = tuple(f"{n}." for n in schemes)
    missing = [m for m in missing if not m.startswith(quantized) and not (tied and m == "lm_head.weight")]
    if missing or unexpected:
        raise ArtifactError(f"{where}: tensors missing {missing[:3]} / unexpected {unexpected[:3]}")
    model.init_buffers()
    return model.eval().requires_grad_(False)


def load_quantized_qwen3_asr(path: str | Path) -> QuantizedQwen3ASR:
    from ..whisper.saved import KIND, Calibration

    path = Path(path)
    verify(path)
    config = _read_json(path / "config.json")
    quantization = _read_json(path / "quantization.json")
    if config.get("family") != FAMILY or "hf_config" not in config:
        raise ArtifactError(f"{path / 'config.json'}: not a quantized Qwen3-ASR (family {config.get('family')!r})")
    try:
        dims = Qwen3ASRDims.from_config(config["hf_config"])
    except (ValueError, TypeError) as e:
        raise ArtifactError(f"{path / 'config.json'}: hf_config: {e}") from None
    weights = path / "model.safetensors"
    model = build_model(dims, load_file(str(weights)), quantization["tensors"], weights)
    tok = Qwen3ASRTokenizer(path / "tokenizer.json")
    langs = config["hf_config"].get("support_languages") or []
    ckpt = Qwen3ASRCheckpoint(
        model=model, dims=dims, tokenizer_json=tok.path, specials=tok.specials, eos_ids=tok.specials.eos_ids,
        languages=[str(x) for x in langs], source=str(path), source_sha256=config["source_sha256"],
        size_bytes=weights.stat().st_size, model_dir=path, format=KIND, variant=config.get("variant", FAMILY),
        extra={"hf_config": config["hf_config"]},
    )
    recipe = recipe_from_dict(quantization["recipe"], source=str(path / "quantization.json"))
    cal = quantization.get("calibration")
    return QuantizedQwen3ASR(ckpt, recipe, quantization["report"], Calibration(**cal) if cal else None)
