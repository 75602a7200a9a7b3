"""The one parser of a model SPEC, as every command takes it.

    whisper-base | DIR                   a checkpoint (registry name; Hugging Face, CTranslate2,
                                         Qwen3-ASR or Mega-ASR directory) or a directory saved
                                         by ``asrquant quantize``
    MODEL@RECIPE                         MODEL quantized now by RECIPE (built-in name or .toml)
    DIR[@VARIANT]                        an ``asrquant export`` ONNX artifact (one of its variants)
    faster-whisper:NAME_OR_DIR[:COMPUTE] peer: CTranslate2 through faster-whisper (float32)
    transformers:NAME_OR_DIR             peer: Hugging Face WhisperForConditionalGeneration
    whisper.cpp:FILE_OR_DIR              peer: whisper.cpp (pywhispercpp) on a ggml model file, or the
                                         directory ``asrquant export --format ggml`` wrote

Torch-free: it reads at most a directory's config.json or manifest.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import families

PEERS = ("faster-whisper", "transformers", "whisper.cpp")
SEPARATOR = "@"


@dataclass(frozen=True)
class Spec:
    text: str  # as given
    kind: str  # "peer" | "onnx" | "quantized" | "model"
    model: str  # registry name or directory (a peer's model too)
    family: str | None = None  # None for peers
    variant: str | None = None  # onnx: DIR@VARIANT
    recipe: str | None = None  # model: MODEL@RECIPE, quantized when opened
    peer: str | None = None
    compute: str | None = None  # faster-whisper's compute type


def split_at(text: str) -> tuple[str, str | None]:
    """``LEFT@RIGHT`` -> (LEFT, RIGHT); a path that exists with "@" in its name stays whole."""
    if Path(text).exists():
        return text, None
    left, sep, right = text.rpartition(SEPARATOR)
    return (left, right) if sep and left and right else (text, None)


def parse(text: str) -> Spec:
    head, sep, rest = text.partition(":")
    if sep and head in PEERS:
        if head == "faster-whisper":
            name, sep, compute = rest.rpartition(":")
            return Spec(text, "peer", name if sep else rest, peer=head, compute=compute if sep else "float32")
        return Spec(text, "peer", rest, peer=head)
    model, suffix = split_at(text)
    if families.is_onnx_artifact(model):
        return Spec(text, "onnx", model, families.onnx_family(model), variant=suffix)
    if suffix is None and families.is_quantized_dir(model):
        return Spec(text, "quantized", model, families.saved_family(model))
    return Spec(text, "model", model, families.family_of(model), recipe=suffix)
