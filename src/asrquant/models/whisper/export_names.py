"""How Whisper's tensors are named and configured in other runtimes' checkpoints (Hugging Face
for compressed-tensors and NVFP4, mlx-examples' ``mlx_whisper`` for MLX): the family's part of
asrquant.export."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from ...export.hf_layout import FamilyInfo, MlxLayout, json_bytes
from ...quant.saved import compact
from .load import WhisperCheckpoint, generation_config, hf_config, hf_name, to_hf_state_dict


def preprocessor_config(n_mels: int) -> dict:
    """WhisperFeatureExtractor's settings: Whisper's fixed front end (16 kHz, 25 ms / 10 ms, 30 s)."""
    return {
        "feature_extractor_type": "WhisperFeatureExtractor", "processor_class": "WhisperProcessor",
        "feature_size": n_mels, "sampling_rate": 16000, "hop_length": 160, "n_fft": 400, "chunk_length": 30,
        "n_samples": 480000, "nb_max_frames": 3000, "padding_side": "right", "padding_value": 0.0,
        "return_attention_mask": False,
    }  # fmt: skip


def hf_module(name: str) -> str:
    return hf_name(f"{name}.weight")[: -len(".weight")]


def mlx_module(name: str) -> str:
    """Our module name -> its path in mlx_whisper's model."""
    return name.replace(".mlp.fc1", ".mlp1").replace(".mlp.fc2", ".mlp2")


def mlx_float_arrays(model: nn.Module, qweights: dict) -> dict[str, Tensor]:
    skip = {f"{n}.{p}" for n in qweights for p in ("weight", "inv_input_scale")}
    out = {}
    for k, v in model.state_dict().items():
        if k in skip or k == "encoder.positional_embedding":  # MLX recomputes the sinusoids
            continue
        if k.endswith(("conv1.weight", "conv2.weight")):
            v = v.transpose(1, 2)  # torch [out, in, kernel] -> MLX [out, kernel, in]
        module, _, param = k.rpartition(".")
        out[f"{mlx_module(module)}.{param}"] = compact(v)
    return out


def family_info(ckpt: WhisperCheckpoint) -> FamilyInfo:
    files = {
        "tokenizer.json": Path(ckpt.tokenizer_json).read_bytes(),
        "generation_config.json": json_bytes(generation_config(ckpt)),
        "preprocessor_config.json": json_bytes(preprocessor_config(ckpt.dims.n_mels)),
    }
    mlx = MlxLayout(
        module=mlx_module, tensor_prefix=mlx_module, float_arrays=mlx_float_arrays,
        config=lambda model, block: {**model.dims.to_dict(), "model_type": "whisper", "quantization": block},
        weights_file="weights.safetensors",
    )
    return FamilyInfo("whisper", hf_config(ckpt), hf_module, to_hf_state_dict, mlx, files, ckpt.source,
                      ckpt.source_sha256, extra_float_linears=("proj_out",))


OPENAI_SIZES = ("tiny", "base", "small", "medium", "large", "large-v2", "large-v3", "large-v3-turbo", "turbo")


def card_facts(spec: str, config: dict) -> dict:
    """What a model card says about the source: its Hugging Face id where it is known (OpenAI's
    checkpoints by their registry name, else the config's ``_name_or_path``), licence and tags."""
    name = Path(str(spec)).name
    size = name.removeprefix("whisper-").removesuffix(".en")
    base = f"openai/{name}" if name.startswith("whisper-") and size in OPENAI_SIZES else None
    return {"base_model": base or config.get("_name_or_path") or name, "license": "apache-2.0",
            "tags": ["whisper"], "language": ["en"] if name.endswith(".en") else None}
