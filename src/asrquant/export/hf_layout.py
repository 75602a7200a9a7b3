"""Export formats beyond ONNX, from the one quantized representation, and the dispatcher behind
``asrquant export --format``.

    onnx                 onnxruntime (asrquant.models.whisper.onnx_graphs; written by the export command)
    compressed-tensors   vLLM: pack-quantized (W4A16 / W8A16), nvfp4- and mxfp4-pack-quantized
    nvfp4                TensorRT-LLM / Model Optimizer unified Hugging Face checkpoint
    mlx                  mlx-audio and mlx-examples whisper: packed uint32 + scales + biases

A writer takes the model (its float tensors come from the quantized model, not the source
checkpoint: LayerNorms carry folded AWQ scales), the :class:`QuantizedWeight` of every quantized
Linear by module name, and a :class:`FamilyInfo` that says how the model family names its
tensors and what its Hugging Face config is. Writers know nothing of calibration.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import AsrQuantError
from ..quant.linear import QuantLinear
from ..quant.qtensor import QuantizedWeight

FORMATS = ("onnx", "compressed-tensors", "nvfp4", "mlx")
WEIGHTS_FILE = "model.safetensors"
# Files of a Qwen3-ASR checkpoint directory that a runtime needs beside the weights.
QWEN_SUPPORT_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "chat_template.json",
                      "preprocessor_config.json", "generation_config.json", "special_tokens_map.json")


@dataclass
class FamilyInfo:
    """What a writer needs to know about a model family beyond the tensors."""

    family: str  # "whisper" | "qwen3-asr"
    config: dict  # the float model's Hugging Face config.json
    files: dict[str, bytes] = field(default_factory=dict)  # support files: name -> content
    source: str = ""
    source_sha256: str = ""
    tied_head: str | None = None  # our module name of an output head tied to the token embedding
    # Linears of the Hugging Face class that our model does not hold (Whisper's proj_out, tied):
    # formats that list the modules they leave in float must name them too.
    extra_float_linears: tuple[str, ...] = ()

    def hf_module(self, name: str) -> str:
        """Our module name -> its name in the family's Hugging Face model class."""
        if self.family == "whisper":
            from ..models.whisper.load import hf_name

            return hf_name(f"{name}.weight")[: -len(".weight")]
        return f"thinker.{name}"

    def hf_state_dict(self, model: nn.Module) -> dict[str, Tensor]:
        if self.family == "whisper":
            from ..models.whisper.load import to_hf_state_dict

            return to_hf_state_dict(model)
        from ..models.qwen3_asr.load import to_hf_state_dict

        return to_hf_state_dict(model)


def family_info(ckpt) -> FamilyInfo:
    """FamilyInfo of a loaded WhisperCheckpoint or Qwen3ASRCheckpoint."""
    from ..models.qwen3_asr.load import Qwen3ASRCheckpoint
    from ..models.whisper.load import WhisperCheckpoint

    if isinstance(ckpt, WhisperCheckpoint):
        # The private builders are the ones write_hf_checkpoint uses: one definition of the config.
        from ..models.whisper.load import _generation_config, _hf_config

        files = {
            "tokenizer.json": Path(ckpt.tokenizer_json).read_bytes(),
            "generation_config.json": _json_bytes(_generation_config(ckpt)),
            "preprocessor_config.json": _json_bytes(whisper_preprocessor_config(ckpt.dims.n_mels)),
        }
        return FamilyInfo("whisper", _hf_config(ckpt), files, ckpt.source, ckpt.source_sha256,
                          extra_float_linears=("proj_out",))
    if isinstance(ckpt, Qwen3ASRCheckpoint):
        from ..models.qwen3_asr.saved import hf_config

        config = hf_config(ckpt)  # a quantized model saved by us keeps it inside its own config.json
        files = {n: (ckpt.model_dir / n).read_bytes() for n in QWEN_SUPPORT_FILES if (ckpt.model_dir / n).is_file()}
        tied = "lm_head" if ckpt.dims.tie_word_embeddings else None
        return FamilyInfo("qwen3-asr", config, files, ckpt.source, ckpt.source_sha256, tied)
    raise AsrQuantError(f"cannot export a {type(ckpt).__name__}: expected a Whisper or Qwen3-ASR checkpoint")


def whisper_preprocessor_config(n_mels: int) -> dict:
    """WhisperFeatureExtractor's settings: Whisper's fixed front end (16 kHz, 25 ms / 10 ms, 30 s)."""
    return {
        "feature_extractor_type": "WhisperFeatureExtractor", "processor_class": "WhisperProcessor",
        "feature_size": n_mels, "sampling_rate": 16000, "hop_length": 160, "n_fft": 400, "chunk_length": 30,
        "n_samples": 480000, "nb_max_frames": 3000, "padding_side": "right", "padding_value": 0.0,
        "return_attention_mask": False,
    }  # fmt: skip


def _json_bytes(d: dict) -> bytes:
    return (json.dumps(d, indent=2) + "\n").encode("utf-8")


# --- what every writer shares --------------------------------------------------------------------


def linear_names(model: nn.Module) -> list[str]:
    """Every Linear of the model, float or quantized, in module order."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, QuantLinear))]


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


def compact(t: Tensor) -> Tensor:
    """float16 where that loses nothing (checkpoints shipped in half precision), else as it is."""
    t = t.detach().cpu()
    if t.dtype == torch.float32 and torch.equal(t.half().float(), t):
        return t.half().contiguous()
    return t.contiguous()


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


# --- the dispatcher and the command line ---------------------------------------------------------


def export_format(fmt: str, ckpt, out_dir: str | Path, recipe=None, **options) -> Path:
    """Write ``ckpt.model`` (quantized in place by ``recipe``) in format ``fmt`` to ``out_dir``.

    ``options`` go to the writer (mlx: ``scale_dtype``; nvfp4: ``activation_amax``).
    """
    if fmt not in FORMATS:
        raise AsrQuantError(f"unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    from ..quant.calibrate import quantized_weights

    family = family_info(ckpt)
    model = ckpt.model
    # A quantized embedding table is written as its dequantized float table (float32, exact):
    # these runtimes keep embeddings in float, and the numbers stay those the recipe chose.
    qweights = {n: qw for n, qw in quantized_weights(model).items() if isinstance(model.get_submodule(n), QuantLinear)}
    if fmt == "compressed-tensors":
        from .compressed_tensors import write_compressed_tensors

        return write_compressed_tensors(model, family, qweights, out_dir, recipe, **options)
    if fmt == "nvfp4":
        from .nvfp4 import write_nvfp4

        return write_nvfp4(model, family, qweights, out_dir, recipe, **options)
    if fmt == "mlx":
        from .mlx import write_mlx

        return write_mlx(model, family, qweights, out_dir, recipe, **options)
    raise AsrQuantError("--format onnx is written by asrquant.models.whisper.onnx_graphs.export_onnx")


def run_format(args) -> int:
    """``asrquant export MODEL --format compressed-tensors|nvfp4|mlx --recipe R --out DIR``."""
    onnx_only = (("--variant", args.variant), ("--fp16", args.fp16), ("--accuracy-level", args.accuracy_level is not None),
                 ("--compute", args.compute != "float"))
    for flag, value in onnx_only:
        if value:
            raise AsrQuantError(f"{flag} is an ONNX option; --format {args.format} does not take it")
    ckpt, recipe = load_for_export(args.model, args.recipe, args.calib, progress=not args.quiet)
    out = export_format(args.format, ckpt, args.out, recipe)
    print(f"wrote {out} ({args.format})", file=sys.stderr)
    return 0


def load_for_export(model: str, recipe: str | None, calib: str | None, progress: bool = True):
    """(checkpoint, recipe): what the ONNX export loads, for either family (Whisper names and
    directories, Qwen3-ASR / Mega-ASR directories, models saved by ``quantize``), quantized now
    by ``recipe`` (calibrated on ``calib``) when one is given."""
    from .command import load

    return load(model, recipe, calib, progress=progress)
