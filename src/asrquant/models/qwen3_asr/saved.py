"""Qwen3-ASR's part of the saved quantized format (asrquant.quant.saved writes and reads the rest).

config.json holds the checkpoint's own Hugging Face config.json under "hf_config" (the model is
rebuilt from it) and the Mega-ASR variant; a tied lm_head is not stored twice; the checkpoint's
tokenizer and processor files are kept beside the weights (export formats read them).

Mega-ASR's audio-quality router is not part of the saved model: it picks between two sets of
weights per clip, and a quantized model is one set.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ...errors import ArtifactError
from ...quant.linear import QuantLinear
from ...quant.saved import model_tensors, quantized_module
from .detect import FAMILY
from .load import Qwen3ASRCheckpoint
from .model import Qwen3ASR, Qwen3ASRDims
from .tokenizer import Qwen3ASRTokenizer

# Tokenizer and processor files of the checkpoint kept beside the weights (formats read them).
SUPPORT_FILES = ("tokenizer_config.json", "vocab.json", "merges.txt", "chat_template.json",
                 "preprocessor_config.json", "generation_config.json", "special_tokens_map.json")


def hf_config(ckpt: Qwen3ASRCheckpoint) -> dict:
    """The checkpoint's Hugging Face config.json (kept in ``extra`` once the model was saved by us)."""
    if "hf_config" in ckpt.extra:
        return ckpt.extra["hf_config"]
    return json.loads((ckpt.model_dir / "config.json").read_text(encoding="utf-8"))


def config(ckpt: Qwen3ASRCheckpoint) -> dict:
    return {"variant": ckpt.variant, "hf_config": hf_config(ckpt)}


def _is_tied(model: Qwen3ASR) -> bool:
    return isinstance(model.lm_head, torch.nn.Linear) and model.lm_head.weight is model.model.embed_tokens.weight


def tensors(model: Qwen3ASR) -> dict[str, torch.Tensor]:
    return model_tensors(model, skip={"lm_head.weight"} if _is_tied(model) else set())


def support_files(ckpt: Qwen3ASRCheckpoint) -> dict[str, Path]:
    files = {"tokenizer.json": Path(ckpt.tokenizer_json)}
    files.update({n: ckpt.model_dir / n for n in SUPPORT_FILES if (ckpt.model_dir / n).is_file()})
    return files


def build_model(dims: Qwen3ASRDims, tensors: dict, schemes: dict, where: Path) -> Qwen3ASR:
    """The fake-quant model from the saved tensors, built on the meta device (no random init)."""
    with torch.device("meta"):
        model = Qwen3ASR(dims)
    plain = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items() if ".qweight." not in k}
    for name, meta in schemes.items():
        parent, _, attr = name.rpartition(".")
        if not isinstance(model.get_submodule(name), torch.nn.Linear):
            raise ArtifactError(f"{where}: quantized tensor {name} is not a Linear of Qwen3-ASR")
        module = quantized_module(name, meta, tensors, plain.pop(f"{name}.bias", None), where)
        if not isinstance(module, QuantLinear):
            raise ArtifactError(f"{where}: {name} is a quantized embedding table, which Qwen3-ASR does not load yet")
        setattr(model.get_submodule(parent), attr, module)
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


def build(path: Path, config: dict, schemes: dict, tensors: dict) -> Qwen3ASRCheckpoint:
    """The fake-quant checkpoint from a saved directory's config, schemes and tensors."""
    if config.get("family") != FAMILY or "hf_config" not in config:
        raise ArtifactError(f"{path / 'config.json'}: not a quantized Qwen3-ASR (family {config.get('family')!r})")
    try:
        dims = Qwen3ASRDims.from_config(config["hf_config"])
    except (ValueError, TypeError) as e:
        raise ArtifactError(f"{path / 'config.json'}: hf_config: {e}") from None
    weights = path / "model.safetensors"
    model = build_model(dims, tensors, schemes, weights)
    tok = Qwen3ASRTokenizer(path / "tokenizer.json")
    langs = config["hf_config"].get("support_languages") or []
    return Qwen3ASRCheckpoint(
        model=model, dims=dims, tokenizer_json=tok.path, specials=tok.specials, eos_ids=tok.specials.eos_ids,
        languages=[str(x) for x in langs], source=str(path), source_sha256=config["source_sha256"],
        size_bytes=weights.stat().st_size, model_dir=path, format=config["kind"], variant=config.get("variant", FAMILY),
        extra={"hf_config": config["hf_config"]},
    )
