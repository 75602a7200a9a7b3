"""How close each row of an ``asrquant bench`` report is to a reference engine (the torch fake-quant
model the artifact was exported from): clips with the same text, and the word-level agreement.

    python benchmarks/onnx-speed/reference_agreement.py BENCH.json REFERENCE_SPEC [--json OUT]

The reference transcribes the report's clips here (greedy, as the bench); the rows' texts are read
from the report.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from asrquant.audio import load_audio
from asrquant.cpu import describe_cpu
from asrquant.engines import open_engine
from asrquant.eval.manifest import read_manifests
from asrquant.eval.metrics import score


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("reference")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    report = json.loads(Path(args.report).read_text())
    clips = read_manifests(report["settings"]["data"])
    engine = open_engine(args.reference, threads=args.threads)
    ref = {c.id: engine.transcribe(load_audio(c.audio), c.lang or "en", 1, 224).text for c in clips}
    rows = []
    for r in report["runs"]:
        hyps = {c["id"]: c.get("hyp") or "" for c in r["clips"]}
        errors = words = 0
        for cid, text in ref.items():
            s = score(text, hyps[cid], "en")
            errors, words = errors + s.errors, words + s.ref_words
        rows.append({"spec": r["spec"], "same_text": sum(hyps[c] == t for c, t in ref.items()), "clips": len(ref),
                     "word_disagreement_vs_reference": round(errors / max(1, words), 4)})
        print(rows[-1])
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": describe_cpu(), "reference": args.reference,
                                               "report": args.report, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
