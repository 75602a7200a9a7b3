"""WER delta of every bench row vs the first one, on a subset of clips, the rest, and all.

    python benchmarks/tools/delta-split.py runs/issue4/r6/eval-544.json --subset runs/data/wild-eval/eval-225.jsonl
    python benchmarks/tools/delta-split.py runs/issue5/whisper-base-int4-eval-225.json runs/issue5/ablate-225.json

Rows are the runs of every report given, in order (the first report's first run is the baseline
unless --baseline names another),
so rows of separate bench runs on the same clips can be paired (WER is deterministic, speed is not).
Why a subset: a delta picked on one part of an eval set should hold on the other part. Each cell is
the bench report's own delta (asrquant.eval.report.delta_cell: paired bootstrap over the part's clips).
"""

import argparse
import json

from asrquant.eval.report import delta_cell, new_failures


def part(run: dict, keep) -> dict:
    return {**run, "clips": [c for c in run["clips"] if keep(c["id"])]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reports", nargs="+", help="bench --json files")
    p.add_argument("--subset", help="a manifest whose clip ids form the subset")
    p.add_argument("--baseline", help="the spec of the row the others are compared with (default: the first)")
    args = p.parse_args()
    runs = [r for path in args.reports for r in json.load(open(path))["runs"]]
    if args.baseline:
        first = [r for r in runs if r["spec"] == args.baseline]
        if not first:
            raise SystemExit(f"{args.reports}: no run of {args.baseline!r}")
        runs = first[:1] + [r for r in runs if r is not first[0]]
    ids = [{c["id"] for c in r["clips"]} for r in runs]
    if any(i != ids[0] for i in ids):
        raise SystemExit(f"{args.reports}: the runs are not on the same clips")
    parts = [("all", lambda i: True)]
    if args.subset:
        subset = {json.loads(line)["id"] for line in open(args.subset) if line.strip()}
        parts = [("subset", lambda i: i in subset), ("rest", lambda i: i not in subset)] + parts
    for run in runs[1:]:
        cells = [run["spec"]]
        for name, keep in parts:
            base = part(runs[0], keep)
            cells.append(f"{name} ({len(base['clips'])} clips): {delta_cell(base, part(run, keep))}")
        cells.append("new failures: " + (", ".join(new_failures(runs[0], run)) or "none"))
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
