"""What the onnx-speed timing scripts share: ways of doing one thing timed interleaved (wall and
CPU seconds of the process), their medians, and the report (printed without the raw timings,
written as JSON with them), and the clips they time (vitw8 + dev). Imported by the scripts beside it (run as
``python benchmarks/onnx-speed/SCRIPT.py``, so this folder is on the path)."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Callable

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"  # ../shared/data beside the repository
SPEED_SETS = ("vitw8", "dev")


def speed_clips() -> list[tuple[str, object]]:
    """(id, audio) of every clip of vitw8 and dev, the sets the speed figures are timed on."""
    from asrquant.audio import load_audio

    out = []
    for name in SPEED_SETS:
        manifest = DATA / name / "manifest.jsonl"
        for line in manifest.read_text().splitlines():
            clip = json.loads(line)
            out.append((clip["id"], load_audio(manifest.parent / clip["audio"])))
    return out


def interleaved(ways: dict[str, Callable[[], object]], repeat: int) -> dict[str, dict[str, list[float]]]:
    """Each way run once per round, ``repeat`` rounds, in the same order: {way: {"wall_s", "cpu_s"}}.
    CPU seconds (``time.process_time``) count the work even when a busy machine makes the wall wait."""
    times = {name: {"wall_s": [], "cpu_s": []} for name in ways}
    for _ in range(repeat):
        for name, run in ways.items():
            c, t = time.process_time(), time.perf_counter()
            run()
            times[name]["wall_s"].append(time.perf_counter() - t)
            times[name]["cpu_s"].append(time.process_time() - c)
    return times


def medians(times: dict[str, dict[str, list[float]]], digits: int) -> dict[str, dict[str, float]]:
    return {name: {k: round(statistics.median(x), digits) for k, x in t.items()} for name, t in times.items()}


def emit(report: dict, raw: dict, path: str | None) -> None:
    """Print ``report``; with ``path``, write it and the ``raw`` timings as JSON."""
    print(json.dumps(report, indent=1))
    if path:
        Path(path).write_text(json.dumps({**report, **raw}, indent=1) + "\n")


def encoder_calls(sessions: dict[str, object], repeat: int) -> tuple[dict, dict]:
    """One 30 s encoder call per session (anything with ``encode(mel)``), after one warm-up call
    each, interleaved ``repeat`` rounds on the same noise log-mel: ({"median", "cpu_ratio_to_first"},
    the raw timings)."""
    import numpy as np

    mel = (np.random.default_rng(0).standard_normal((80, 3000)) * 0.5).astype(np.float32)
    for s in sessions.values():
        s.encode(mel)  # warm-up
    runs = interleaved({name: (lambda s=s: s.encode(mel)) for name, s in sessions.items()}, repeat)
    median = medians(runs, 4)
    first = next(iter(median))
    return {"median": median,
            "cpu_ratio_to_first": {n: round(m["cpu_s"] / median[first]["cpu_s"], 3) for n, m in median.items()}}, runs
