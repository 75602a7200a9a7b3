"""What every export writer shares: how a model family lays out its tensors in other runtimes'
checkpoints (:class:`FamilyInfo`, supplied by the family's ``export_names.family_info``) and the
helpers that build a checkpoint from the one quantized representation.

A writer takes the model (its float tensors come from the quantized model, not the source
checkpoint: LayerNorms carry folded AWQ scales), the :class:`QuantizedWeight` of every quantized
Linear by module name, and a :class:`FamilyInfo`. Writers know nothing of calibration, and
nothing of any family beyond what FamilyInfo says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from torch import Tensor, nn

from .. import families
from ..errors import AsrQuantError
from ..quant.qtensor import QuantizedWeight
from ..quant.saved import compact

WEIGHTS_FILE = "model.safetensors"


@dataclass
class MlxLayout:
    """How the family's MLX model (mlx-examples, mlx-audio) names and holds its tensors."""

    module: Callable[[str], str]  # our module name -> its path in the MLX model (quantization block keys)
    tensor_prefix: Callable[[str], str]  # our module name -> the prefix of its tensors in the file
    float_arrays: Callable[[nn.Module, dict], dict[str, Tensor]]  # every non-quantized tensor, file names
    config: Callable[[nn.Module, dict], dict]  # config.json, given the quantization block
    weights_file: str
    # Quantized Linears the MLX model keeps in float (written as their dequantized weights).
    keeps_float: Callable[[str], bool] = lambda name: False


@dataclass
class GgmlLayout:
    """How the family's model file for whisper.cpp (ggml) holds it: the header, the front end's
    mel filters, the token table and every tensor under the file's names."""

    hparams: tuple[int, ...]  # the int32 header fields after the magic, before the file type
    mel_filters: Any  # numpy float32 [n_mels, n_fft // 2 + 1]
    vocab: list[bytes]  # the ordinary tokens' bytes by id (the runtime names the special ones)
    module: Callable[[str], str]  # our module name -> its weight's name in the file
    # Every tensor of the model under the file's names, in file order, shaped as the file stores
    # it, with its storage: "main" (the file's type: the Linears and the token table), "half"
    # (float16: the convolution kernels) or "float" (float32).
    tensors: Callable[[nn.Module], dict[str, tuple[Tensor, str]]]


@dataclass
class FamilyInfo:
    """What a writer needs to know about a model family beyond the tensors."""

    family: str  # as manifests record it
    config: dict  # the float model's Hugging Face config.json
    hf_module: Callable[[str], str]  # our module name -> its name in the family's Hugging Face class
    hf_state_dict: Callable[[nn.Module], dict[str, Tensor]]  # the model's tensors under Hugging Face names
    mlx: MlxLayout
    files: dict[str, bytes] = field(default_factory=dict)  # support files: name -> content
    source: str = ""
    source_sha256: str = ""
    tied_head: str | None = None  # our module name of an output head tied to the token embedding
    # Linears of the Hugging Face class that our model does not hold (Whisper's proj_out, tied):
    # formats that list the modules they leave in float must name them too.
    extra_float_linears: tuple[str, ...] = ()
    ggml: GgmlLayout | None = None  # None: the family has no whisper.cpp model file
    # (model, fp16=...) -> {"encoder_model": proto, "decoder_model_merged": proto} in transformers.js'
    # names; None: no transformers.js model class reads the family
    transformers_js: Callable[..., dict] | None = None


def family_info(ckpt) -> FamilyInfo:
    """The :class:`FamilyInfo` of a loaded checkpoint of any family."""
    return families.module(ckpt.family, "export_names").family_info(ckpt)


def json_bytes(d: dict) -> bytes:
    return (json.dumps(d, indent=2) + "\n").encode("utf-8")


# --- what every writer shares --------------------------------------------------------------------


def float_tensors(model: nn.Module, family: FamilyInfo, qweights: dict[str, QuantizedWeight]) -> dict[str, Tensor]:
    """The model's tensors under Hugging Face names, less what the quantized Linears store in
    their own form (the dequantized cache ``weight`` and ``inv_input_scale``) and less a head tied
    to the embedding (the runtime ties it again)."""
    if family.tied_head is not None and family.tied_head in qweights:
        raise AsrQuantError(
            f"{family.tied_head} is quantized but tied to the token embedding (tie_word_embeddings): "
            "ignore it in the recipe (the default ignore list does)"
        )
    drop = set()
    for name in qweights:
        h = family.hf_module(name)
        drop |= {f"{h}.weight", f"{h}.inv_input_scale"}
    if family.tied_head is not None:
        drop.add(f"{family.hf_module(family.tied_head)}.weight")
    sd = family.hf_state_dict(model)
    return {k: compact(v) for k, v in sd.items() if k not in drop}


def write_support_files(family: FamilyInfo, directory: Path) -> None:
    for name, content in family.files.items():
        (directory / name).write_bytes(content)


def write_config(directory: Path, config: dict) -> None:
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def manifest_fields(fmt: str, family: FamilyInfo, qweights: dict[str, QuantizedWeight], recipe, names: dict) -> dict:
    """What every format's manifest.json says: the source, the recipe and each tensor's scheme."""
    return {
        "kind": f"asrquant-export-{fmt}",
        "format": fmt,
        "family": family.family,
        "source": family.source,
        "source_sha256": family.source_sha256,
        "recipe": None if recipe is None else recipe.to_dict(),
        "schemes": {names[n]: qw.scheme.name for n, qw in qweights.items()},
    }


def require_quantized(qweights: dict, fmt: str) -> None:
    if not qweights:
        raise AsrQuantError(f"--format {fmt} writes a quantized model, and none of this model's Linears is quantized: "
                            "pass --recipe")


def refuse_input_scale(name: str, qw: QuantizedWeight, fmt: str) -> None:
    """Formats without a per-input-channel scale: an AWQ scale that calibration could not fold into
    a LayerNorm cannot be carried without re-quantizing the Linear before it, which would change
    the quantization the user chose. Refuse and say what works."""
    if qw.input_scale is not None:
        raise AsrQuantError(
            f"{name}: {qw.scheme.name} with an AWQ input scale that was not folded into a LayerNorm; "
            f"{fmt} has no per-input-channel scale to carry it. Export to onnx or nvfp4 (they carry it), "
            "or use a recipe without AWQ on this layer (gptq, rtn)."
        )
