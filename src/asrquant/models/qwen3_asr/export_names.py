"""How Qwen3-ASR's tensors are named and configured in other runtimes' checkpoints: its own
Hugging Face names (``thinker.*``) everywhere, mlx-audio included (its ``sanitize`` maps them).
The family's part of asrquant.export."""

from __future__ import annotations

from ...export.hf_layout import FamilyInfo, MlxLayout, float_tensors
from .detect import FAMILY
from .load import Qwen3ASRCheckpoint, to_hf_state_dict
from .saved import hf_config

# Files of a Qwen3-ASR checkpoint directory that a runtime needs beside the weights.
SUPPORT_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "chat_template.json",
                 "preprocessor_config.json", "generation_config.json", "special_tokens_map.json")


def hf_module(name: str) -> str:
    return f"thinker.{name}"


def family_info(ckpt: Qwen3ASRCheckpoint) -> FamilyInfo:
    config = hf_config(ckpt)  # a quantized model saved by us keeps it inside its own config.json
    files = {n: (ckpt.model_dir / n).read_bytes() for n in SUPPORT_FILES if (ckpt.model_dir / n).is_file()}
    tied = "lm_head" if ckpt.dims.tie_word_embeddings else None
    mlx = MlxLayout(
        module=lambda name: name, tensor_prefix=hf_module,
        float_arrays=lambda model, qweights: float_tensors(model, info, qweights),
        config=lambda model, block: {**config, "quantization": block},
        weights_file="model.safetensors",
        # mlx-audio's Qwen3-ASR quantizes the text model only, never audio_tower.
        keeps_float=lambda name: name.startswith("audio_tower."),
    )
    info = FamilyInfo(FAMILY, config, hf_module, to_hf_state_dict, mlx, files, ckpt.source, ckpt.source_sha256,
                      tied)
    return info


def card_facts(spec: str, config: dict) -> dict:
    """What a model card says about the source: the config's ``_name_or_path`` (a Hugging Face id
    such as Qwen/Qwen3-ASR-0.6B) where it records one, else the directory's name."""
    name = str(spec).rstrip("/").rsplit("/", 1)[-1]
    return {"base_model": config.get("_name_or_path") or name, "license": "apache-2.0", "tags": ["qwen3-asr"],
            "language": None}
