"""The one parser of a model SPEC, as every command takes it.

    whisper-base | DIR                   a checkpoint (registry name; Hugging Face, CTranslate2,
                                         Qwen3-ASR or Mega-ASR directory) or a directory saved
                                         by ``asrquant quantize``
    MODEL@RECIPE                         MODEL quantized now by RECIPE (built-in name or .toml)
    DIR[@VARIANT]                        an ``asrquant export`` ONNX artifact (one of its variants)
    faster-whisper:NAME_OR_DIR[:COMPUTE] peer: CTranslate2 through faster-whisper (float32)
    transformers:NAME_OR_DIR             peer: Hugging Face WhisperForConditionalGeneration
    whisper.cpp:FILE_OR_DIR[:noflash]    peer: whisper.cpp (pywhispercpp) on a ggml model file, or the
                                         directory ``asrquant export --format ggml`` wrote; ``noflash``:
                                         its flash attention off (on by default; on a CPU it sums
                                         attention values in float16)

Torch-free: it reads at most a directory's config.json or manifest.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import families
from .errors import ArtifactError

PEERS = ("faster-whisper", "transformers", "whisper.cpp")
SEPARATOR = "@"
WHISPER_CPP_ATTENTION = ("flash", "noflash")  # whisper.cpp's attention: its flash kernel (its default) or not


@dataclass(frozen=True)
class Spec:
    text: str  # as given
    kind: str  # "peer" | "onnx" | "transformers.js" | "quantized" | "model"
    model: str  # registry name or directory (a peer's model too)
    family: str | None = None  # None for peers
    variant: str | None = None  # onnx: DIR@VARIANT
    recipe: str | None = None  # model: MODEL@RECIPE, quantized when opened
    peer: str | None = None
    compute: str | None = None  # faster-whisper's compute type; whisper.cpp: "flash" or "noflash"


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
        if head == "whisper.cpp":
            name, sep, attention = rest.rpartition(":")
            if sep and attention in WHISPER_CPP_ATTENTION:
                return Spec(text, "peer", name, peer=head, compute=attention)
            return Spec(text, "peer", rest, peer=head, compute="flash")
        return Spec(text, "peer", rest, peer=head)
    model, suffix = split_at(text)
    if families.is_transformers_js_artifact(model):
        return Spec(text, "transformers.js", model, families.transformers_js_family(model))
    if families.is_onnx_artifact(model):
        family = families.onnx_family(model)
        if family not in families.FAMILIES:
            raise ArtifactError(f"{Path(model) / 'manifest.json'}: family {family!r} is not one this asrquant "
                                f"knows ({', '.join(families.FAMILIES)})")
        return Spec(text, "onnx", model, family, variant=suffix)
    if Path(model).is_dir() and any(Path(model).glob("*.onnx")):
        raise ArtifactError(onnx_manifest_problem(Path(model)))
    if suffix is None and families.is_quantized_dir(model):
        return Spec(text, "quantized", model, families.saved_family(model))
    return Spec(text, "model", model, families.family_of(model), recipe=suffix)


def onnx_manifest_problem(directory: Path) -> str:
    """Why a directory holding ONNX graphs is not an export we can open (rather than calling it
    "not a Whisper checkpoint")."""
    path = directory / "manifest.json"
    if not path.is_file():
        return f"{path}: missing; {directory} holds ONNX graphs but is not a complete asrquant export"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"{path}: unreadable or not valid JSON ({e})"
    if not isinstance(manifest, dict):
        return f"{path}: expected a JSON object, got {type(manifest).__name__}"
    return f"{path}: kind is {manifest.get('kind')!r}, not {families.ONNX_KIND!r}; not an asrquant ONNX export"
