"""Which CPU a measurement ran on: its model name and the instruction sets that decide the speed
of quantized kernels (AVX2; AVX512 and its VNNI int8 dot products; AVX-VNNI; AMX tiles). Every
bench row records it, so a speed figure always names its machine."""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

# /proc/cpuinfo flag -> the name people know it by, in the order reports list them
FEATURES = (("avx2", "AVX2"), ("avx512f", "AVX512"), ("avx512_vnni", "AVX512-VNNI"), ("avx_vnni", "AVX-VNNI"),
            ("amx_int8", "AMX"))


def parse_cpuinfo(text: str) -> dict:
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    features = [name for flag, name in FEATURES if flag in flags]
    return {"model": model or platform.processor() or platform.machine(), "features": features}


@lru_cache(maxsize=1)
def cpu_info() -> dict:
    """``{"model": ..., "features": [...], "label": "MODEL (AVX2, AVX512-VNNI, AMX)"}``."""
    try:
        info = parse_cpuinfo(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:  # not Linux: the model name only
        info = {"model": platform.processor() or platform.machine(), "features": []}
    info["label"] = f"{info['model']} ({', '.join(info['features']) or 'no AVX2'})"
    return info
