"""The one root of everything asrquant caches (joined checkpoints, tokenizers, data sets,
quantized models of ``MODEL@RECIPE`` specs).

``$ASRQUANT_CACHE`` if set, else ``$XDG_CACHE_HOME/asrquant``, else ``~/.cache/asrquant``.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    env = os.environ.get("ASRQUANT_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "asrquant"
