"""One 30 s encoder call per variant of an artifact, interleaved: median CPU seconds of the
process (``time.process_time``) and median wall seconds. With ``--threads 1`` no onnxruntime
thread spins, so the CPU time counts the encoder's work even on a busy machine.

    python benchmarks/onnx-speed/encoder_cpu_time.py DIR default fused [--threads 1] [--repeat 9] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from asrquant.cpu import describe_cpu
from asrquant.models.whisper.onnx_session import open_onnx_artifact


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("artifact")
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--json")
    args = ap.parse_args()
    sessions = {v: open_onnx_artifact(Path(args.artifact), args.threads, v)[0].session for v in args.variants}
    mel = (np.random.default_rng(0).standard_normal((80, 3000)) * 0.5).astype(np.float32)
    for s in sessions.values():
        s.encode(mel)  # warm-up
    runs = {v: {"cpu_s": [], "wall_s": []} for v in sessions}
    for _ in range(args.repeat):
        for v, s in sessions.items():
            c, t = time.process_time(), time.perf_counter()
            s.encode(mel)
            runs[v]["wall_s"].append(time.perf_counter() - t)
            runs[v]["cpu_s"].append(time.process_time() - c)
    median = {v: {k: round(statistics.median(x), 4) for k, x in r.items()} for v, r in runs.items()}
    first = args.variants[0]
    report = {"cpu": describe_cpu(), "artifact": args.artifact, "threads": args.threads, "repeat": args.repeat,
              "median": median,
              "cpu_ratio_to_first": {v: round(m["cpu_s"] / median[first]["cpu_s"], 3) for v, m in median.items()},
              "runs": runs}
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
