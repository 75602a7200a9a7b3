"""Teacher-forced KL per position to the float model, of quantized models as torch fake-quant and as
the CPU export runs them (the encoder graph's Linears through the int8 chain, emulated by
``export/onnx/int8_choice.emulate_int8``, which a test checks against onnxruntime; no smoothing),
on calibration clips that none of the models was quantized on.

    python benchmarks/refinement/int8_kl.py FLOAT_MODEL Q1 [Q2 ...] --clips 8 --json out.json

A model may be FLOAT_MODEL itself: its fake-quant KL is 0, its int8-chain KL the chain's own cost.

The held-out clips: those of the models' calibration manifest that no model's quantization.json
lists (the default set's other condition of each sentence: same sentences, other audio), ``--clips``
of them spread over the set.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from asrquant import families
from asrquant.export.onnx.int8_choice import emulate_int8
from asrquant.quant.calibrate import spread
from asrquant.quant.command import load_checkpoint
from asrquant.quant.linear import linear_names
from asrquant.quant.refine import kl_per_position, teacher_log_probs


def held_out_manifest(models: list[str], out_dir: Path) -> Path:
    cals = [json.loads((Path(m) / "quantization.json").read_text())["calibration"] for m in models
            if (Path(m) / "quantization.json").exists()]  # a float model (the int8 chain alone) has none
    manifest = Path(cals[0]["manifest"])
    if any(c["manifest"] != str(manifest) for c in cals):
        raise SystemExit("the models were calibrated on different manifests")
    used = {i for c in cals for i in c["ids"]}
    lines = [json.loads(x) for x in manifest.read_text().splitlines() if x.strip()]
    held = [dict(x, audio=str(manifest.parent / x["audio"])) for x in lines if x["id"] not in used]
    path = out_dir / "held-out.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in held))
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("float_model")
    p.add_argument("models", nargs="+")
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    fl, _ = load_checkpoint(args.float_model, progress=False)
    cal = families.module(fl.family, "calib")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = held_out_manifest(args.models, Path(tmp))
        n_held = len(manifest.read_text().splitlines())
        samples, calibration = cal.calibration_samples(fl, manifest, args.clips, progress=False)
    ids = list(calibration.ids)
    assert len(ids) == len(spread(n_held, args.clips))
    teacher = teacher_log_probs(lambda i: cal.teacher_forced_logits(fl.model, samples[i], "cpu"), len(samples))
    rows = {}
    for spec in args.models:
        ckpt, _ = load_checkpoint(spec, progress=False)
        model = ckpt.model
        names = [n for n in linear_names(model) if n.startswith(cal.ENCODER_PREFIX)
                 or n.endswith(("cross_attn.key", "cross_attn.value"))]
        row = {}
        for mode in ("fake_quant", "int8_chain"):
            handles = [emulate_int8(model.get_submodule(n)) for n in names] if mode == "int8_chain" else []
            try:
                with torch.no_grad():
                    kls = [kl_per_position(cal.teacher_forced_logits(model, s, "cpu"), t).item()
                           for s, t in zip(samples, teacher)]
            finally:
                for h in handles:
                    h.remove()
            row[mode] = {"mean": sum(kls) / len(kls), "per_clip": kls}
        row["int8_linears"] = len(names)
        rows[spec] = row
        print(f"{spec}: KL fake-quant {row['fake_quant']['mean']:.5f}, int8 chain {row['int8_chain']['mean']:.5f} "
              f"({len(names)} Linears int8)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"float": args.float_model, "clips": ids, "models": rows}, indent=1))


if __name__ == "__main__":
    main()
