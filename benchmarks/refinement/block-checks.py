"""The block refinement's loss checks and time per block on the calibration clips (tuning data only).

    python benchmarks/refinement/block-checks.py whisper-tiny.en --steps 100 --lr 0.005 --clips 32

Quantizes MODEL by the benchmark's block recipe (steps, lr, clips overridden) on the demo's default
calibration set and prints, per refined block, the relative squared error of its outputs on the
check samples at every check (the first is the GPTQ start) and the block's training seconds; then
the quantization's total, forward and refinement seconds. Nothing here reads the reporting clips.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from checks import quantize_traced

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
    opts = f'level = "block", steps = {a.steps}, lr = {a.lr}, positions = {a.positions}'
    quantize_traced(a.model, RECIPE.read_text().replace('level = "block"', opts), str(RECIPE), a.clips)


if __name__ == "__main__":
    main()
