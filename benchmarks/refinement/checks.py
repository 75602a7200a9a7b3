"""What block-checks.py and e2e-checks.py share: quantize a model by a recipe's text on the demo's
default calibration set with the refinement's training traced, printing for every refinement the
loss on its check samples at every check (the first is the start's) and its wall and CPU seconds,
then the quantization's total, forward and refinement seconds. Imported by the scripts beside it
(run as ``python benchmarks/refinement/SCRIPT.py``, so this folder is on the path)."""

from __future__ import annotations

import time

import asrquant.quant.refine as refine
from asrquant import families
from asrquant.data.default_set import default_calib_set
from asrquant.quant.calibrate import quantize_model
from asrquant.quant.recipe import parse_recipe


def _traced(train):
    def traced(session, steps, step_loss, check_loss, advance=None):
        t, cpu, hist = time.perf_counter(), time.process_time(), []

        def check():
            hist.append(check_loss())
            return hist[-1]

        out = train(session, steps, step_loss, check, advance)
        print(f"checks {[round(h, 6) for h in hist]}  {time.perf_counter() - t:.1f} s wall, "
              f"{time.process_time() - cpu:.1f} s CPU", flush=True)
        return out

    return traced


def quantize_traced(model: str, recipe_text: str, source: str, clips: int, notes: bool = False) -> None:
    """Quantize ``model`` by ``recipe_text`` (its calibration clips set to ``clips``) with every
    refinement's checks printed; ``notes``: the quantization's notes after its times."""
    refine.train = _traced(refine.train)
    fam = families.get(families.family_of(model))
    ckpt = fam.module("load").load(model)
    samples, _ = fam.module("calib").calibration_samples(ckpt, default_calib_set() / "manifest.jsonl", clips, False)
    text = recipe_text.replace("clips = 32", f"clips = {clips}")
    cpu = time.process_time()
    rep = quantize_model(ckpt.model, parse_recipe(text, source=source), samples, progress=False, device="cpu")
    print(f"total {rep.seconds:.0f} s wall ({time.process_time() - cpu:.0f} s CPU), "
          f"forward {rep.forward_seconds:.0f} s, refinement {rep.refine_seconds:.0f} s"
          + (f"; {'; '.join(rep.notes)}" if notes else ""))
