"""One bench report from several `asrquant bench --json` reports on the same clips: the first
report's settings, every report's runs in order. For tools that read one report (paired.py,
calib_size_choose.py) when the rows were benched in separate runs (greedy decoding is
deterministic, so rows pair clip by clip across runs).

    python benchmarks/refinement/join_reports.py A.json B.json [...] --out JOINED.json
"""

import argparse
import json

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("reports", nargs="+")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    reports = [json.load(open(p)) for p in a.reports]
    joined = {**reports[0], "runs": [run for r in reports for run in r["runs"]]}
    json.dump(joined, open(a.out, "w"))
