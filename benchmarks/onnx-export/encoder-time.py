"""Median time of one encoder call (a 30 s window) per variant of an ONNX artifact, interleaved.

    python benchmarks/onnx-export/encoder-time.py runs/issue5/whisper-base-onnx default gptq-emb8 gptq-emb8-i8-fp16

The encoder is most of a short clip's transcription time; this isolates it from decoding.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from asrquant.models.whisper.onnx_session import open_onnx_artifact


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifact")
    ap.add_argument("variants", nargs="+", help="variant names ('default' for the unsuffixed graphs)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    # the runner's own sessions: an int8 variant's encoder weights are expanded at load as it does
    sessions = {v: open_onnx_artifact(Path(args.artifact), args.threads, v)[0].session for v in args.variants}
    mel = (np.random.default_rng(0).standard_normal((80, 3000)) * 0.5).astype(np.float32)
    times = {v: [] for v in sessions}
    for _ in range(args.repeat):  # interleaved: a busy moment hits every variant alike
        for v, s in sessions.items():
            times[v].append(_time(s, mel))
    for v, ts in times.items():
        print(f"{v:24s} median {1e3 * np.median(ts):7.1f} ms  (min {1e3 * min(ts):.1f}, max {1e3 * max(ts):.1f})")


def _time(session, mel: np.ndarray) -> float:
    t = time.perf_counter()
    session.encode(mel)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
