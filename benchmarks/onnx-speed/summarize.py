"""The small summary of an ``asrquant bench`` speed report that this campaign commits: per row
the CPU, median RTF, RTF per repetition, the ratio to the peer row (per repetition, the runs being
interleaved, and of the medians), peak RSS, size, WER; and how many clips' texts equal the first row's.

    python benchmarks/onnx-speed/summarize.py BENCH.json [--peer faster-whisper:whisper-base:int8] --out OUT.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("--peer", default="faster-whisper:whisper-base:int8")
    ap.add_argument("--out")
    args = ap.parse_args()
    report = json.loads(Path(args.report).read_text())
    runs = {r["spec"]: r for r in report["runs"]}
    peer = runs[args.peer]
    base = report["runs"][0]
    base_hyp = {c["id"]: c.get("hyp") for c in base["clips"]}
    rows = []
    for r in report["runs"]:
        per_rep = [a / b for a, b in zip(r["rtf_runs"], peer["rtf_runs"])]
        rows.append({
            "spec": r["spec"], "cpu": r.get("cpu"), "rtf": round(r["rtf"], 4),
            "rtf_runs": [round(x, 4) for x in r["rtf_runs"]],
            "rtf_vs_peer": round(r["rtf"] / peer["rtf"], 3),
            "rtf_vs_peer_per_repetition": [round(x, 3) for x in per_rep],
            "rtf_vs_first_row_per_repetition": [round(a / b, 3) for a, b in zip(r["rtf_runs"], base["rtf_runs"])],
            "encoder_share": r.get("encoder_share"), "peak_rss_mb": round(r["peak_rss_mb"], 1),
            "size_mb": round(r["size_bytes"] / 1e6, 1) if r.get("size_bytes") else None,
            "wer": r.get("wer"), "clips": len(r["clips"]),
            "same_text_as_first_row": sum(c.get("hyp") == base_hyp.get(c["id"]) for c in r["clips"]),
        })
    out = {"settings": {k: report["settings"].get(k) for k in ("threads", "repeat", "beam", "clips", "data")},
           "peer": args.peer, "rows": rows}
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print("median of per-repetition ratios to the peer:",
          {r["spec"]: round(statistics.median(r["rtf_vs_peer_per_repetition"]), 3) for r in rows})


if __name__ == "__main__":
    main()
