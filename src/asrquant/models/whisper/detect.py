"""Is this a Whisper checkpoint? Torch-free (see asrquant.families)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .hub import KNOWN

FAMILY = "whisper"  # the name manifests and configs record (asrquant.families)


def is_source(spec: str | os.PathLike) -> bool:
    """A registry name, a CTranslate2 directory (model.bin) or a Hugging Face Whisper directory."""
    if os.fspath(spec) in KNOWN:
        return True
    path = Path(spec)
    if (path / "model.bin").is_file():
        return True
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type") == "whisper"
    except (OSError, ValueError, AttributeError):
        return False
