"""The block refinement's loss checks and time per block on the calibration clips (tuning data only).

    python benchmarks/refinement/block-checks.py whisper-tiny.en --steps 100 --lr 0.005 --clips 32

Quantizes MODEL by the benchmark's block recipe (steps, lr, clips overridden) on the demo's default
calibration set and prints, per refined block, the relative squared error of its outputs on the
check samples at every check (the first is the GPTQ start) and the block's training seconds; then
the quantization's total, forward and refinement seconds. Nothing here reads the reporting clips.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import asrquant.quant.refine as refine
from asrquant import families
from asrquant.data.default_set import default_calib_set
from asrquant.quant.calibrate import quantize_model
from asrquant.quant.recipe import parse_recipe

RECIPE = Path(__file__).parent / "recipes" / "gptq-int4-g64-enc32-emb4-dwq-block.toml"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--positions", type=int, default=256)
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    train = refine.train

    def traced(session, steps, step_loss, check_loss, advance=None):
        t, cpu, hist = time.perf_counter(), time.process_time(), []

        def check():
            hist.append(check_loss())
            return hist[-1]

        out = train(session, steps, step_loss, check, advance)
        print(f"checks {[round(h, 6) for h in hist]}  {time.perf_counter() - t:.1f} s wall, "
              f"{time.process_time() - cpu:.1f} s CPU", flush=True)
        return out

    refine.train = traced
    fam = families.get(families.family_of(a.model))
    ckpt = fam.module("load").load(a.model)
    samples, _ = fam.module("calib").calibration_samples(ckpt, default_calib_set() / "manifest.jsonl", a.clips, False)
    opts = f'level = "block", steps = {a.steps}, lr = {a.lr}, positions = {a.positions}'
    text = RECIPE.read_text().replace('level = "block"', opts).replace("clips = 32", f"clips = {a.clips}")
    cpu = time.process_time()
    rep = quantize_model(ckpt.model, parse_recipe(text, source=str(RECIPE)), samples, progress=False, device="cpu")
    print(f"total {rep.seconds:.0f} s wall ({time.process_time() - cpu:.0f} s CPU), "
          f"forward {rep.forward_seconds:.0f} s, refinement {rep.refine_seconds:.0f} s")


if __name__ == "__main__":
    main()
