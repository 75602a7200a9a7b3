"""How Whisper's tensors are named and configured in other runtimes' checkpoints (Hugging Face
for compressed-tensors and NVFP4, mlx-examples' ``mlx_whisper`` for MLX, whisper.cpp's ggml model
file): the family's part of asrquant.export."""

from __future__ import annotations

import json
from pathlib import Path

from torch import Tensor, nn

from ...export.hf_layout import FamilyInfo, GgmlLayout, MlxLayout, json_bytes
from ...features import mel_filters
from ...quant.saved import compact
from .detect import FAMILY
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


# --- whisper.cpp (ggml) ------------------------------------------------------------------------------
# Its loader finds tensors by openai-whisper's state-dict names (mlp.0 / mlp.2 for our fc1 / fc2)
# and shapes: the convolution biases as [n, 1].


def ggml_module(name: str) -> str:
    """Our module name -> its weight's name in whisper.cpp's model file."""
    return name.replace(".mlp.fc1", ".mlp.0").replace(".mlp.fc2", ".mlp.2") + ".weight"


def ggml_tensors(model: nn.Module) -> dict[str, tuple[Tensor, str]]:
    out = {"encoder.positional_embedding": (model.encoder.positional_embedding, "float")}
    for k, v in model.state_dict().items():
        if k.endswith(".inv_input_scale"):
            continue  # an unfolded AWQ scale: the writer refuses it from the quantized weight
        module, _, param = k.rpartition(".")
        name = ggml_module(module)[: -len("weight")] + param
        if k in ("encoder.conv1.bias", "encoder.conv2.bias"):
            out[name] = (v.reshape(-1, 1), "float")
        elif v.dim() == 3:
            out[name] = (v, "half")
        elif v.dim() == 2 and param == "weight":
            out[name] = (v, "main")
        else:
            out[name] = (v, "float")
    return out


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet, inverted: the printable character standing for each byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1),
                 *range(ord("\u00ae"), ord("\u00ff") + 1)]
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return {c: b for b, c in chars.items()}


def ggml_vocab(tokenizer_json: Path) -> list[bytes]:
    """The ordinary tokens' bytes, ids 0 .. <|endoftext|> - 1 (as whisper.cpp's converter writes
    them; the loader names the special tokens itself)."""
    vocab = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))["model"]["vocab"]
    eot = vocab.get("<|endoftext|>")
    if eot is None:
        eot = next(t["id"] for t in json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))["added_tokens"]
                   if t["content"] == "<|endoftext|>")
    by_id = {i: tok for tok, i in vocab.items() if i < eot}
    decoder = _byte_decoder()
    return [bytes(decoder[c] for c in by_id.get(i, "")) for i in range(eot)]


def ggml_layout(ckpt: WhisperCheckpoint) -> GgmlLayout:
    d = ckpt.dims
    hparams = (d.n_vocab, d.n_audio_ctx, d.n_audio_state, d.n_audio_head, d.n_audio_layer, d.n_text_ctx,
               d.n_text_state, d.n_text_head, d.n_text_layer, d.n_mels)
    return GgmlLayout(hparams, mel_filters(d.n_mels), ggml_vocab(ckpt.tokenizer_json), ggml_module, ggml_tensors)


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
    return FamilyInfo(FAMILY, hf_config(ckpt), hf_module, to_hf_state_dict, mlx, files, ckpt.source,
                      ckpt.source_sha256, extra_float_linears=("proj_out",), ggml=ggml_layout(ckpt),
                      transformers_js=transformers_js_graphs)


def transformers_js_graphs(model: nn.Module, fp16: bool = True) -> dict:
    from .transformers_js_graphs import transformers_js_graphs as graphs  # onnx and tracing: only when asked

    return graphs(model, fp16=fp16)[0]


OPENAI_SIZES = ("tiny", "base", "small", "medium", "large", "large-v2", "large-v3", "large-v3-turbo", "turbo")


def card_facts(spec: str, config: dict) -> dict:
    """What a model card says about the source: its Hugging Face id where it is known (OpenAI's
    checkpoints by their registry name, else the config's ``_name_or_path``), licence and tags."""
    name = Path(str(spec)).name
    size = name.removeprefix("whisper-").removesuffix(".en")
    base = f"openai/{name}" if name.startswith("whisper-") and size in OPENAI_SIZES else None
    return {"base_model": base or config.get("_name_or_path") or name, "license": "apache-2.0",
            "tags": ["whisper"], "language": ["en"] if name.endswith(".en") else None}
