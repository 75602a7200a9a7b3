"""What a greedy check (dwq's ``check = "greedy"``) decodes and costs: the float model's greedy
tokens on the check clips of the built-in calibration pool, and the seconds per clip (median).

    python benchmarks/refinement/check_cost.py whisper-tiny.en whisper-base [--clips 48] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch

from asrquant.cpu import describe_cpu
from asrquant.models.whisper.calib import calibration_samples, free_running_tokens
from asrquant.models.whisper.load import load_whisper
from asrquant.quant.refine import _check_units

POOL_CLIPS = 348  # the built-in refined recipe's calibration clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--clips", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pool = subprocess.check_output([sys.executable, "-m", "asrquant.cli", "data", "default", "--calib-pool"],
                                   text=True).strip()
    print(describe_cpu(), f"; {args.threads} thread(s)")
    for name in args.models:
        ckpt = load_whisper(name)
        samples, _ = calibration_samples(ckpt, pool, POOL_CLIPS, progress=False)
        tokens, seconds = 0, []
        for i in _check_units(len(samples), args.clips):
            t = time.perf_counter()
            tokens += len(free_running_tokens(ckpt.model, samples[i]))
            seconds.append(time.perf_counter() - t)
        median = statistics.median(seconds)
        print(f"{name}: {tokens} greedy tokens on {len(seconds)} check clips; {median:.2f} s a clip (median), "
              f"{sum(seconds) / 60:.1f} min a check")


if __name__ == "__main__":
    main()
