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
from pathlib import Path

import torch
from checks import quantize_traced


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("recipe")
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    quantize_traced(a.model, Path(a.recipe).read_text(), a.recipe, a.clips, notes=True)


if __name__ == "__main__":
    main()
