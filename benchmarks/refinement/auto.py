"""Sensitivities of every tensor of MODEL measured once, then an auto recipe per budget.

    python benchmarks/refinement/auto.py whisper-tiny.en --calib CALIB/manifest.jsonl --budgets 4.5 4.0 \
        --out benchmarks/refinement/results/whisper-tiny.en

Writes sensitivity.json (tensor -> scheme -> teacher-forced KL per position, alone, RTN) and
auto-<budget>bpw.toml; the same as `asrquant recipe auto` once per budget, without measuring twice.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from asrquant import families
from asrquant.quant.sensitivity import choose, mean_bits, measure, recipe_toml


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--calib", required=True)
    ap.add_argument("--budgets", type=float, nargs="+", default=[4.5, 4.0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fam = families.get(families.family_of(a.model))
    ckpt = fam.module("load").load(a.model)
    samples, cal = fam.module("calib").calibration_samples(ckpt, a.calib, a.clips, False)
    tensors = measure(ckpt.model, samples, progress=False)
    seconds = time.perf_counter() - t0
    (out / "sensitivity.json").write_text(json.dumps({
        "model": a.model, "calib": str(a.calib), "clips": cal.ids, "seconds": round(seconds, 1),
        "tensors": {t.name: {"shape": list(t.shape), "table": t.table, "kl": t.kl} for t in tensors},
    }, indent=1))
    for b in a.budgets:
        pick = choose(tensors, b)
        cmd = f"python benchmarks/refinement/auto.py {a.model} --calib CALIB --budgets {b} --clips {a.clips}"
        (out / f"auto-{b:g}bpw.toml").write_text(recipe_toml(tensors, pick, b, 32, cmd))
        print(f"{b:g}: {mean_bits(tensors, pick):.3f} bits per weight, predicted KL sum "
              f"{sum(t.kl[pick[t.name].name] for t in tensors):.4g}")
    print(f"measured in {seconds:.1f} s")


if __name__ == "__main__":
    main()
