"""What does quantizing Whisper's tied token table cost, as lookups and as logits weights?

Every Linear stays float; only the table is rounded, by round to nearest or by GPTQ on the final
hidden states (decoder.ln's output, which multiplies the table) of the recipe's calibration clips
(``spread(n, --clips)`` of the manifest, as `asrquant quantize` picks them). It is scored teacher
forced on other clips of the same manifest (held out from that calibration): per predicted
position, the KL divergence of the next-token distribution from the float model's, and how often
its argmax changes. Teacher forcing scores every position of every clip, so differences far below
one word of WER show, which greedy transcripts of a few dozen clips cannot.

    python benchmarks/quantization/embedding-sensitivity.py whisper-base --calib runs/data/wild-calib/manifest.jsonl
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from asrquant.eval.manifest import read_manifest
from asrquant.models.whisper.calib import calibration_samples
from asrquant.models.whisper.load import load_whisper
from asrquant.quant.algorithms.gptq import gptq
from asrquant.quant.algorithms.rtn import rtn
from asrquant.quant.calibrate import spread
from asrquant.quant.qtensor import dequantize
from asrquant.quant.scheme import QuantScheme

PROMPT = 3  # <|startoftranscript|> <|en|> <|transcribe|>: positions scored from the first text token on


def subset_manifest(manifest: Path, indices: list[int], out: Path) -> Path:
    """The lines ``indices`` of ``manifest``, audio paths made absolute."""
    lines = manifest.read_text(encoding="utf-8").splitlines()
    with out.open("w", encoding="utf-8") as f:
        for i in indices:
            d = json.loads(lines[i])
            d["audio"] = str((manifest.parent / d["audio"]).resolve())
            f.write(json.dumps(d) + "\n")
    return out


class Scorer:
    """Final hidden states of samples (audio features cached), with a given table as the lookups."""

    def __init__(self, model, samples):
        self.model, self.samples, self.dec = model, samples, model.decoder
        with torch.no_grad():
            self.features = [model.encoder(torch.from_numpy(s.mel)[None]) for s in samples]

    def hidden(self, lookups: torch.Tensor) -> list[torch.Tensor]:
        emb, out = self.dec.token_embedding, []
        kept = emb.weight.detach().clone()
        handle = self.dec.ln.register_forward_hook(lambda _m, _i, o: out.append(o[0]))
        with torch.no_grad():
            emb.weight.copy_(lookups)
            for s, f in zip(self.samples, self.features):
                ck, cv = self.dec.cross_kv(f)
                pk, pv = self.dec.empty_cache(1)
                self.dec(torch.from_numpy(s.tokens)[None], pk, pv, ck, cv)
            emb.weight.copy_(kept)
        handle.remove()
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--calib", required=True, type=Path, help="manifest: calibration clips and held-out clips")
    p.add_argument("--clips", type=int, default=32, help="calibration clips (the recipe's)")
    p.add_argument("--held-out", type=int, default=64, help="held-out clips scored")
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--group-size", type=int, default=64)
    p.add_argument("--damp", type=float, nargs="+", default=[0.01, 0.05], help="GPTQ dampings tried")
    p.add_argument("--rows8", type=int, nargs="*", default=[],
                   help="also: the first N rows (the most frequent BPE tokens) in 8 bits, the rest as above")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_whisper(args.model)
    model = ckpt.model.eval()
    n = len(read_manifest(args.calib))
    calib = spread(n, args.clips)
    rest = [i for i in range(n) if i not in set(calib)]
    held = [rest[i] for i in spread(len(rest), args.held_out)]
    with tempfile.TemporaryDirectory() as tmp:
        cal_samples, _ = calibration_samples(ckpt, subset_manifest(args.calib, calib, Path(tmp) / "c.jsonl"), n, False)
        held_samples, _ = calibration_samples(ckpt, subset_manifest(args.calib, held, Path(tmp) / "h.jsonl"), n, False)
    table = model.decoder.token_embedding.weight.detach().clone()
    x = torch.cat(Scorer(model, cal_samples).hidden(table)).double()
    hessian = (x.T @ x / x.shape[0]).float()
    scorer = Scorer(model, held_samples)
    ref = [torch.log_softmax(h @ table.T, -1)[PROMPT:] for h in scorer.hidden(table)]
    positions = sum(r.shape[0] for r in ref)
    print(f"{args.model}: GPTQ statistics from {x.shape[0]} positions of {len(calib)} clips; "
          f"scored on {positions} positions of {len(held)} held-out clips of {args.calib}")
    print(f"{'table':34s} {'KL/position':>12s} {'argmax changed':>15s}")

    def score(name: str, lookups: torch.Tensor, logits_w: torch.Tensor) -> None:
        kl, changed = 0.0, 0
        for h, r in zip(scorer.hidden(lookups), ref):
            q = torch.log_softmax(h @ logits_w.T, -1)[PROMPT:]
            kl += (r.exp() * (r - q)).sum().item()
            changed += int((r.argmax(-1) != q.argmax(-1)).sum())
        print(f"{name:34s} {kl / positions:12.5f} {changed:9d} / {positions}", flush=True)

    scheme = QuantScheme.int(args.bits, args.group_size, False, "float16")
    rounded = dequantize(rtn(table, scheme))
    score(f"rtn {scheme.name}: lookups only", rounded, table)
    score(f"rtn {scheme.name}: logits only", table, rounded)
    score(f"rtn {scheme.name}", rounded, rounded)
    eight = dequantize(rtn(table, QuantScheme.int(8, args.group_size, False, "float16")))
    for damp in args.damp:
        fitted = dequantize(gptq(table, hessian, scheme, damp=damp))
        score(f"gptq {scheme.name} damp {damp}", fitted, fitted)
        for n8 in args.rows8:  # GPTQ treats rows independently: the others' codes do not change
            mixed = torch.cat([eight[:n8], fitted[n8:]])
            score(f"  first {n8} rows int8", mixed, mixed)
    score("rtn int8 (same groups)", eight, eight)


if __name__ == "__main__":
    main()
