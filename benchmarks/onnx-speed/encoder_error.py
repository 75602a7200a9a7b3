"""How far each variant's encoder output (the cross-attention keys and values) is from the torch
fake-quant model it was exported from, and from the first variant, per clip: relative L2 error.

    python benchmarks/onnx-speed/encoder_error.py DIR QUANTIZED_DIR MANIFEST default fused [--json OUT]

Tells whether two variants that decode some clips differently are equally close to the reference
(differences of rounding) or one is less exact.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from asrquant.audio import load_audio
from asrquant.cpu import describe_cpu
from asrquant.features import log_mel
from asrquant.models.whisper.onnx_session import open_onnx_artifact
from asrquant.models.whisper.torch_session import WhisperTorchSession
from asrquant.quant.saved import load_quantized


def rel(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.linalg.norm(x - y) / np.linalg.norm(y))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("artifact")
    ap.add_argument("quantized")
    ap.add_argument("manifest")
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--json")
    args = ap.parse_args()
    sessions = {v: open_onnx_artifact(args.artifact, 1, v)[0].session for v in args.variants}
    reference = WhisperTorchSession(load_quantized(args.quantized).ckpt.model)
    clips = [json.loads(line) for line in Path(args.manifest).read_text().splitlines() if line.strip()]
    rows = []
    for c in clips:
        mel = log_mel(load_audio(Path(args.manifest).parent / c["audio"]))
        outs = {v: s.encode(mel) for v, s in sessions.items()}
        k, v = (t.numpy() for t in reference.encode(mel))
        first = outs[args.variants[0]]
        n_layer, _, heads, dh, ctx = first.k.shape
        ref_k = k.reshape(n_layer, 1, ctx, heads, dh).transpose(0, 1, 3, 4, 2)
        ref_v = v.reshape(n_layer, 1, ctx, heads, dh).transpose(0, 1, 3, 2, 4)
        rows.append({"id": c["id"],
                     **{f"{name} vs reference": round((rel(o.k, ref_k) + rel(o.v, ref_v)) / 2, 5)
                        for name, o in outs.items()},
                     **{f"{name} vs {args.variants[0]}": round((rel(o.k, first.k) + rel(o.v, first.v)) / 2, 5)
                        for name, o in outs.items() if name != args.variants[0]}})
        print(rows[-1])
    keys = [k for k in rows[0] if k != "id"]
    summary = {k: round(statistics.median(r[k] for r in rows), 5) for k in keys}
    print("median", summary)
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": describe_cpu(), "artifact": args.artifact,
                                               "reference": args.quantized, "median": summary, "clips": rows},
                                              indent=1) + "\n")


if __name__ == "__main__":
    main()
