"""Sensitivities of every tensor of MODEL measured once, then an auto recipe per budget.

    python benchmarks/refinement/auto.py whisper-tiny.en --calib CALIB/manifest.jsonl --budgets 4.5 4.0 \
        --out benchmarks/refinement/results/whisper-tiny.en [--costs gptq]

Writes sensitivity.json (tensor -> scheme -> teacher-forced KL per position, alone, RTN) and
auto-<budget>bpw.toml; the same as `asrquant recipe auto` once per budget, without measuring twice.
With ``--costs gptq`` (each Linear quantized by GPTQ on the Hessians of the --recipe-clips clips the
costs are not measured on): sensitivity-gptq.json and auto-gptq-costs-<budget>bpw.toml.
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
    ap.add_argument("--recipe-clips", type=int, default=32)
    ap.add_argument("--costs", choices=("rtn", "gptq"), default="rtn")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fam = families.get(families.family_of(a.model))
    ckpt = fam.module("load").load(a.model)
    calib = fam.module("calib")
    samples, cal = calib.calibration_samples(ckpt, a.calib, a.clips, False)
    others, other_ids = None, []
    if a.costs == "gptq":  # as `asrquant recipe auto --costs gptq`
        pool, pool_cal = calib.calibration_samples(ckpt, a.calib, a.recipe_clips, False)
        kept = [(s, i) for s, i in zip(pool, pool_cal.ids) if i not in set(cal.ids)]
        others, other_ids = [s for s, _ in kept], [i for _, i in kept]
    tensors = measure(ckpt.model, samples, progress=False, hessian_samples=others)
    seconds = time.perf_counter() - t0
    tag = "" if a.costs == "rtn" else "-gptq"
    (out / f"sensitivity{tag}.json").write_text(json.dumps({
        "model": a.model, "calib": str(a.calib), "costs": a.costs, "clips": cal.ids, "hessian_clips": other_ids,
        "seconds": round(seconds, 1),
        "tensors": {t.name: {"shape": list(t.shape), "table": t.table, "kl": t.kl} for t in tensors},
    }, indent=1))
    for b in a.budgets:
        pick = choose(tensors, b)
        cmd = (f"python benchmarks/refinement/auto.py {a.model} --calib CALIB --budgets {b} --clips {a.clips} "
               f"--costs {a.costs}")
        name = f"auto{tag}-costs-{b:g}bpw" if tag else f"auto-{b:g}bpw"
        (out / f"{name}.toml").write_text(recipe_toml(tensors, pick, b, a.recipe_clips, cmd, name=name, costs=a.costs))
        print(f"{b:g}: {mean_bits(tensors, pick):.3f} bits per weight, predicted KL sum "
              f"{sum(t.kl[pick[t.name].name] for t in tensors):.4g}")
    print(f"measured in {seconds:.1f} s")


if __name__ == "__main__":
    main()
