"""Which CPU a measurement ran on: its model name and the instruction sets that decide how fast
int8 and int4 kernels run (AVX2; AVX512-VNNI / AVX-VNNI for int8 dot products; AMX tiles). Every
bench row and report records it, so a speed figure always names its machine."""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

# /proc/cpuinfo flag -> the name people know it by, in the order reports list them.
FEATURES = (("avx2", "AVX2"), ("avx512f", "AVX512"), ("avx512_vnni", "AVX512-VNNI"), ("avx_vnni", "AVX-VNNI"),
            ("amx_int8", "AMX"), ("asimddp", "NEON dot product"), ("sve", "SVE"))
SHOWN = ("AVX2", "AVX512-VNNI", "AMX")  # named even when absent: they decide the int8 speed


def parse_cpuinfo(text: str) -> dict:
    """{"model", "features", "missing"} from the text of /proc/cpuinfo (x86 and ARM spellings)."""
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Processor") and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    have = [label for flag, label in FEATURES if flag in flags]
    return {"model": model or platform.processor() or platform.machine(), "features": have,
            "missing": [f for f in SHOWN if f not in have] if flags else None}


def describe_cpu(info: dict | None = None) -> str:
    """``AMD EPYC, 2 cores: AVX2; no AVX512-VNNI, no AMX``."""
    info = info or cpu_info()
    text = f"{info['model']}, {info['cores']} cores"
    if info.get("missing") is None:
        return text + " (instruction sets unknown)"
    have = ", ".join(info["features"]) or "none of " + ", ".join(SHOWN)
    missing = ", ".join(f"no {f}" for f in info["missing"])
    return f"{text}: {have}" + (f"; {missing}" if missing else "")


def read_cpu_info(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """{"model", "cores", "features", "missing", "label"}; where there is no /proc (not Linux),
    the platform module's name and the instruction sets unknown."""
    try:
        info = parse_cpuinfo(Path(cpuinfo).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        info = {"model": platform.processor() or platform.machine(), "features": [], "missing": None}
    info["cores"] = os.cpu_count()
    info["label"] = describe_cpu(info)
    return info


@lru_cache(maxsize=1)
def cpu_info() -> dict:
    """This machine's :func:`read_cpu_info` (read once per process)."""
    return read_cpu_info()
