"""Model families: a family's name -> its folder, and the family of a model directory.

A family is a folder ``asrquant/models/<package>/`` holding the same role-named modules
(:data:`ROLES`); the stages that are not family-specific (quantize, export, bench) reach them
by name through :func:`module`, so a family folder never imports another and adding a family is
its folder plus one line in :data:`FAMILIES`.

Torch-free, and so is every ``detect`` module: the ONNX runtime path and the bench's parent
process use this without loading a model.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .errors import ModelError

# What each family folder holds, by role (the same file names in every family), and the names
# each role module provides to the stages that are not family-specific.
ROLES: dict[str, tuple[str, ...]] = {
    "detect": ("FAMILY", "is_source"),  # its name; a checkpoint of this family? (torch-free)
    "model": (),  # the torch module (its class has a `family` attribute) and its dimensions
    "load": ("load",),  # load(spec) -> checkpoint (weights, tokenizer, settings)
    "tokenizer": (),
    "transcribe": (),  # the transcriber: prompt, decoding rules, output parsing
    "calib": ("CalibAdapter", "calibration_samples", "check_recipe"),  # blocks in execution order
    "saved": ("config", "tensors", "support_files", "build"),  # its part of the saved format
    "export_names": ("family_info", "card_facts"),  # tensor names and configs for the formats
    "onnx_graphs": ("export_onnx",),  # export_onnx(ckpt, out, ...): the family's ONNX graphs
    "onnx_session": ("open_transcriber",),  # the torch-free runner of its exports
    "torch_session": ("open_transcriber",),  # the fake-quant reference
}
# Roles a family may have: a format only some families export to (Whisper's transformers.js layout).
OPTIONAL_ROLES: dict[str, tuple[str, ...]] = {
    "transformers_js_session": ("open_transformers_js",),  # the runner of its transformers.js exports
}

SAVED_KIND = "asrquant-quantized"  # config.json "kind" of a directory written by `asrquant quantize`
ONNX_KIND = "onnx"  # manifest.json "kind" of an `asrquant export` ONNX artifact
TRANSFORMERS_JS_KIND = "asrquant-export-transformers.js"  # of an `asrquant export --format transformers.js`


@dataclass(frozen=True)
class Family:
    name: str  # as manifests and configs record it
    package: str  # the folder under asrquant/models/

    def module(self, role: str) -> ModuleType:
        if role not in ROLES and role not in OPTIONAL_ROLES:
            raise ValueError(f"unknown family role {role!r} (one of: {', '.join([*ROLES, *OPTIONAL_ROLES])})")
        return importlib.import_module(f"asrquant.models.{self.package}.{role}")

    def has(self, role: str) -> bool:
        """Whether the family provides ``role`` (every required role; an optional one if its file exists)."""
        return role in ROLES or importlib.util.find_spec(f"asrquant.models.{self.package}.{role}") is not None


# Detection tries the families in this order; the last is the default (its loader explains
# what it expected when a directory is nobody's checkpoint).
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("qwen3-asr", "qwen3_asr"),
    Family("whisper", "whisper"),
)}
DEFAULT = "whisper"


class UnknownFamilyError(ModelError, ValueError):
    """A family name no folder answers to (a ValueError too, for callers that pass names in code)."""


def get(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise UnknownFamilyError(f"unknown model family {name!r} (known: {', '.join(FAMILIES)})") from None


def module(family: str, role: str) -> ModuleType:
    return get(family).module(role)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def saved_family(path: str | Path) -> str | None:
    """The family of a directory written by ``asrquant quantize`` (None for anything else)."""
    config = _read_json(Path(path) / "config.json")
    return config.get("family", "whisper") if config.get("kind") == SAVED_KIND else None


def onnx_family(path: str | Path) -> str | None:
    """The family an ``asrquant export`` ONNX artifact records (None for anything else)."""
    manifest = _read_json(Path(path) / "manifest.json")
    return manifest.get("family") if manifest.get("kind") == ONNX_KIND else None


def transformers_js_family(path: str | Path) -> str | None:
    """The family a ``--format transformers.js`` export records (None for anything else)."""
    manifest = _read_json(Path(path) / "manifest.json")
    return manifest.get("family") if manifest.get("kind") == TRANSFORMERS_JS_KIND else None


def is_transformers_js_artifact(path: str | Path) -> bool:
    return (Path(path) / "manifest.json").is_file() and transformers_js_family(path) is not None


def is_quantized_dir(path: str | Path) -> bool:
    return saved_family(path) is not None


def is_onnx_artifact(path: str | Path) -> bool:
    return (Path(path) / "manifest.json").is_file() and onnx_family(path) is not None


def family_of(model: str | Path) -> str:
    """The family of a model: a directory of ours (by what it records), a checkpoint (by each
    family's ``detect.is_source``, from its config, never its name), else :data:`DEFAULT`."""
    recorded = saved_family(model) or onnx_family(model)
    if recorded is not None:
        return recorded
    for family in FAMILIES.values():
        if family.name != DEFAULT and family.module("detect").is_source(model):
            return family.name
    return DEFAULT
