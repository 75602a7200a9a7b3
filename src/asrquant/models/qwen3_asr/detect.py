"""Is this a Qwen3-ASR checkpoint (or a Mega-ASR directory holding one)? Torch-free (see
asrquant.families): judged from config.json, never from a name."""

from __future__ import annotations

import json
from pathlib import Path

FAMILY = "qwen3-asr"  # the name manifests and configs record (asrquant.families)


def is_checkpoint_dir(path: Path) -> bool:
    cfg = path / "config.json"
    if not cfg.is_file():
        return False
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    thinker = data.get("thinker_config") if isinstance(data, dict) else None
    if not isinstance(thinker, dict):
        return False
    return data.get("model_type") == "qwen3_asr" and "forced_aligner" not in str(thinker.get("model_type", ""))


def is_source(path: Path) -> bool:
    """A Qwen3-ASR checkpoint directory, or a directory holding one in a subfolder (Mega-ASR)."""
    path = Path(path)
    if not path.is_dir():
        return False
    if is_checkpoint_dir(path):
        return True
    if (path / "config.json").is_file():
        return False  # another model's directory: its subfolders are not ours to guess from
    return any(is_checkpoint_dir(p) for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
