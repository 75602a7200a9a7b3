"""One bench report from several `asrquant bench --json` reports on the same clips: the first
report's settings, every report's runs in order. For tools that read one report (paired.py,
calib_size_choose.py) when the rows were benched in separate runs (greedy decoding is
deterministic, so rows pair clip by clip across runs). ``--last-suffix S`` appends S to the specs of
the last report's runs: the same model path benched twice (an artifact rebuilt in place) stays two rows.

    python benchmarks/refinement/join_reports.py A.json B.json [...] [--last-suffix S] --out JOINED.json
"""

import argparse
import json

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("reports", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--last-suffix", default="")
    a = ap.parse_args()
    reports = [json.load(open(p)) for p in a.reports]
    for run in reports[-1]["runs"]:
        run["spec"] += a.last_suffix
    joined = {**reports[0], "runs": [run for r in reports for run in r["runs"]]}
    json.dump(joined, open(a.out, "w"))
