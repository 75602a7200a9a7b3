"""Which CPU a measurement ran on: its model name and the instruction sets that decide how fast
int8 and int4 kernels run (AVX2; AVX512-VNNI / AVX-VNNI for int8 dot products; AMX tiles)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

FEATURES = (("avx2", "AVX2"), ("avx512f", "AVX512"), ("avx512_vnni", "AVX512-VNNI"), ("avx_vnni", "AVX-VNNI"),
            ("amx_tile", "AMX"), ("asimddp", "NEON dot product"), ("sve", "SVE"))
SHOWN = ("AVX2", "AVX512-VNNI", "AMX")  # named even when absent: they decide the int8 speed


def cpu_info(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """{"model": ..., "cores": n, "features": [...], "missing": [...]} from /proc/cpuinfo where
    there is one, else from the platform module (features then unknown)."""
    model, flags = None, set()
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Processor") and model is None:
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    have = [label for flag, label in FEATURES if flag in flags]
    return {"model": model or platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "features": have, "missing": [f for f in SHOWN if f not in have] if flags else None}


def describe_cpu(info: dict | None = None) -> str:
    """``AMD EPYC, 2 cores: AVX2; no AVX512-VNNI, no AMX``."""
    info = info or cpu_info()
    text = f"{info['model']}, {info['cores']} cores"
    if info.get("missing") is None:
        return text + " (instruction sets unknown)"
    have = ", ".join(info["features"]) or "none of " + ", ".join(SHOWN)
    missing = ", ".join(f"no {f}" for f in info["missing"])
    return f"{text}: {have}" + (f"; {missing}" if missing else "")
