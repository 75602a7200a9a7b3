"""WER delta of every row of a bench JSON vs its first row, on a subset of clips, the rest, and all.

    python scripts/delta-split.py runs/issue4/r6/eval-544.json runs/data/wild-eval/eval-225.jsonl

Why: a delta picked on one part of an eval set should hold on the other part; each figure comes
with the paired bootstrap interval over that part's clips (asrquant.eval.metrics.bootstrap_ci).
"""

import json
import sys

from asrquant.eval.metrics import bootstrap_ci


def main(report: str, subset_manifest: str) -> None:
    runs = json.load(open(report))["runs"]
    subset = {json.loads(line)["id"] for line in open(subset_manifest) if line.strip()}
    first = {c["id"]: c for c in runs[0]["clips"]}
    parts = [("subset", lambda i: i in subset), ("rest", lambda i: i not in subset), ("all", lambda i: True)]
    for run in runs[1:]:
        clips = {c["id"]: c for c in run["clips"]}
        cells = [run["spec"]]
        for name, keep in parts:
            ids = [i for i in clips if keep(i)]
            ea = [first[i]["errors"] for i in ids]
            eb = [clips[i]["errors"] for i in ids]
            refs = [first[i]["ref_words"] for i in ids]
            low, high = bootstrap_ci(ea, refs, eb)
            words = sum(eb) - sum(ea)
            cells.append(f"{name} ({len(ids)} clips): {100 * words / sum(refs):+.2f} pp "
                         f"[{100 * low:+.2f}, {100 * high:+.2f}] ({words:+d} w)")
        print(" | ".join(cells))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
