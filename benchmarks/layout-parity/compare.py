"""Compare two runs of run.sh (before / after a change) transcript by transcript and weight by weight.

    python benchmarks/layout-parity/compare.py OUT_BEFORE OUT_AFTER

For each model: every clip's transcript and how its decoding ended, in every bench row (torch fp32, the quantized
directory, its ONNX export); the saved quantized tensors (by value: safetensors writes its
metadata in a per-process hash order, so the file bytes differ run to run); the ONNX files by
bytes. Then the AFTER code loads the BEFORE quantized directory and must give the same tensors.
Exits 1 on any difference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors import safe_open

MODELS = ("whisper-tiny.en", "whisper-base")


def transcripts(report: Path) -> dict:
    runs = json.loads(report.read_text())["runs"]
    return {i: {c["id"]: (c["hyp"], c["stops"]) for c in run["clips"]} for i, run in enumerate(runs)}


def same_tensors(a: Path, b: Path) -> list[str]:
    fa, fb = safe_open(str(a), "pt"), safe_open(str(b), "pt")
    if set(fa.keys()) != set(fb.keys()):
        return ["tensor names differ"]
    return [k for k in fa.keys() if not torch.equal(fa.get_tensor(k), fb.get_tensor(k))]


def main(before: Path, after: Path) -> int:
    from asrquant.quant.saved import load_quantized

    bad = 0
    for m in MODELS:
        tb, ta = transcripts(before / f"{m}-vitw8.json"), transcripts(after / f"{m}-vitw8.json")
        for row, name in enumerate(("torch fp32", "gptq-int4-g64 dir", "its ONNX export")):
            diff = [c for c in tb[row] if tb[row][c] != ta[row].get(c)]
            differ = f" (differ: {diff})" if diff else ""
            print(f"{m} {name}: {len(tb[row]) - len(diff)}/{len(tb[row])} clips identical{differ}")
            bad += len(diff)
        d = same_tensors(before / f"{m}-gptq/model.safetensors", after / f"{m}-gptq/model.safetensors")
        print(f"{m} quantized tensors: {'identical' if not d else f'{len(d)} differ: {d[:5]}'}")
        bad += len(d)
        old_dir, new_dir = before / f"{m}-gptq-onnx", after / f"{m}-gptq-onnx"
        onnx = sorted(p.name for p in old_dir.iterdir() if ".onnx" in p.name)
        differ = [f for f in onnx if (old_dir / f).read_bytes() != (new_dir / f).read_bytes()]
        listed = f" (differ: {differ})" if differ else ""
        print(f"{m} ONNX files: {len(onnx) - len(differ)}/{len(onnx)} byte-identical{listed}")
        bad += len(differ)
        old = load_quantized(before / f"{m}-gptq").ckpt.model.state_dict()
        new = load_quantized(after / f"{m}-gptq").ckpt.model.state_dict()
        same = old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old)
        print(f"{m}: the directory saved by the earlier code loads, equal to the new one: {same}")
        bad += not same
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
