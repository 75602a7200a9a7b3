"""The end-to-end refinement's check KLs (calibration clips only): what held-out check clips said
at every check, so a refinement that was not kept shows how close it came.

    python benchmarks/refinement/e2e-checks.py whisper-base RECIPE.toml --clips 32 --threads 1

Quantizes MODEL by RECIPE (an e2e refinement; its own steps and options) on the demo's default
calibration set and prints the KL per position on the check clips at every check (the first is
the GPTQ start's; through the int8 chain where the recipe says ``activations = "int8"``), then
the times. Nothing here reads the reporting clips.
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("recipe")
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
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
    text = Path(a.recipe).read_text().replace("clips = 32", f"clips = {a.clips}")
    cpu = time.process_time()
    rep = quantize_model(ckpt.model, parse_recipe(text, source=a.recipe), samples, progress=False, device="cpu")
    print(f"total {rep.seconds:.0f} s wall ({time.process_time() - cpu:.0f} s CPU), "
          f"forward {rep.forward_seconds:.0f} s, refinement {rep.refine_seconds:.0f} s; {'; '.join(rep.notes)}")


if __name__ == "__main__":
    main()
