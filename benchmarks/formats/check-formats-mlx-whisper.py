"""The MLX export through mlx_whisper itself: its loader, its model, its decoding loop (MLX, float32,
greedy, no timestamps) on the vitw8 clips, against our torch fake-quant model and our decoding
loop. mlx_whisper takes one group size and bit width, so the recipe must be uniform.

mlx-whisper is not an asrquant dependency; run this where it is installed, e.g.

    python -m venv /tmp/mlxw && echo "$PWD/.venv/lib/python3.11/site-packages" > \\
        /tmp/mlxw/lib/python3.11/site-packages/asrquant.pth && echo "$PWD/src" >> \\
        /tmp/mlxw/lib/python3.11/site-packages/asrquant.pth
    /tmp/mlxw/bin/pip install --no-deps mlx-whisper && /tmp/mlxw/bin/pip install tiktoken more-itertools
    /tmp/mlxw/bin/python benchmarks/formats/check-formats-mlx-whisper.py --recipe rtn-int4-g64 --clips 8
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]  # the repository root (this file is in benchmarks/formats/)
sys.path.insert(0, str(ROOT / "tests" / "export"))
sys.path.insert(0, str(ROOT / "tests"))

import format_fixtures as ff  # noqa: E402

from asrquant.audio import load_audio  # noqa: E402
from asrquant.export.command import export_format  # noqa: E402

TEXT_TOKENS = 50256  # ids below <|endoftext|>: the transcript without special tokens


def main() -> int:
    import mlx_whisper

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="rtn-int4-g64")
    ap.add_argument("--clips", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(2)
    ckpt, recipe = ff.quantized_tiny(args.recipe)
    clips = [json.loads(x) for x in ff.VITW8.read_text().splitlines() if x.strip()][: args.clips]
    ours = ff.greedy_tokens(ckpt, ckpt.model, clips)
    same = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = export_format("mlx", ckpt, Path(tmp) / "mlx", recipe)
        for clip, mine in zip(clips, ours):
            res = mlx_whisper.transcribe(load_audio(ff.VITW8.parent / clip["audio"]), path_or_hf_repo=str(out),
                                         fp16=False, temperature=0.0, condition_on_previous_text=False,
                                         without_timestamps=True, language="en")
            theirs = [t for s in res["segments"] for t in s["tokens"] if t < TEXT_TOKENS]
            same += theirs == [t for t in mine if t < TEXT_TOKENS]
            print(f"| {clip['category']} | {theirs == [t for t in mine if t < TEXT_TOKENS]} | {res['text'].strip()} |")
    print(f"\nmlx_whisper vs torch fake-quant, {args.recipe}: {same}/{len(clips)} clips with identical tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
