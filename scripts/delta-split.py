"""WER delta of every row of a bench JSON vs its first row, on a subset of clips, the rest, and all.

    python scripts/delta-split.py runs/issue4/r6/eval-544.json runs/data/wild-eval/eval-225.jsonl

Why: a delta picked on one part of an eval set should hold on the other part. Each cell is the
bench report's own delta (asrquant.eval.report.delta_cell: paired bootstrap over the part's clips).
"""

import json
import sys

from asrquant.eval.report import delta_cell


def part(run: dict, keep) -> dict:
    return {**run, "clips": [c for c in run["clips"] if keep(c["id"])]}


def main(report: str, subset_manifest: str) -> None:
    runs = json.load(open(report))["runs"]
    subset = {json.loads(line)["id"] for line in open(subset_manifest) if line.strip()}
    parts = [("subset", lambda i: i in subset), ("rest", lambda i: i not in subset), ("all", lambda i: True)]
    for run in runs[1:]:
        cells = [run["spec"]]
        for name, keep in parts:
            base = part(runs[0], keep)
            cells.append(f"{name} ({len(base['clips'])} clips): {delta_cell(base, part(run, keep))}")
        print(" | ".join(cells))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
