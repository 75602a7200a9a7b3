"""Write a random Whisper checkpoint N times whisper-base's size, to measure calibration memory.

Calibration streams block by block (README, "Quantization"): the peak should be the float
model plus one block's activations and Hessians, not all of them. No checkpoint ten times
whisper-base ships on PyPI, so this builds one with whisper-medium's shape (762 M parameters,
10.6 x base's 72 M) from random weights and base's tokenizer and special ids; teacher-forced
calibration on references needs no meaningful output from it. Then measure, e.g.:

    python scripts/bench/calib-memory.py runs/whisper-medium-random
    /usr/bin/time -v asrquant quantize runs/whisper-medium-random --recipe gptq-int4-g64 \
        --calib runs/data/wild-calib/manifest.jsonl --out runs/medium-gptq --threads 2

The bound to read it against: 24 GiB on this machine, and the float model's own size.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from asrquant.models.whisper import Whisper, WhisperDims
from asrquant.models.whisper_load import load_whisper, write_hf_checkpoint

# whisper-medium (openai/whisper model card): 1024 wide, 16 heads, 24 + 24 layers.
MEDIUM = dict(n_audio_state=1024, n_audio_head=16, n_audio_layer=24,
              n_text_state=1024, n_text_head=16, n_text_layer=24)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="directory to write (Hugging Face layout, float32 safetensors)")
    ap.add_argument("--like", default="whisper-base", help="tokenizer, vocabulary and special ids from this model")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    base = load_whisper(args.like)
    dims = WhisperDims(**{**base.dims.to_dict(), **MEDIUM})
    torch.manual_seed(args.seed)
    model = Whisper(dims).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:  # weights ~ N(0, 0.02) as Whisper's init; norms keep ones, biases zeros
                p.normal_(0.0, 0.02)
    n = sum(p.numel() for p in model.parameters())
    n_base = sum(p.numel() for p in base.model.parameters())
    ckpt = dataclasses.replace(base, model=model, dims=dims, source="random whisper-medium shape",
                               alignment_heads=[])
    write_hf_checkpoint(ckpt, args.out)
    print(f"wrote {args.out}: {n / 1e6:.0f} M parameters, {n / n_base:.1f} x {args.like} ({n_base / 1e6:.0f} M), "
          f"{n * 4 / 2**30:.2f} GiB in float32")


if __name__ == "__main__":
    main()
