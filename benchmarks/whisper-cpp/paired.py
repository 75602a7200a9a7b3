"""Paired WER difference between two rows of a bench report (95% bootstrap over clips), with and
without the clips where either row loops.

    python benchmarks/whisper-cpp/paired.py REPORT.json SPEC_A SPEC_B
"""

import json
import sys

from asrquant.eval.metrics import bootstrap_ci


def main(path: str, a: str, b: str) -> None:
    runs = {r["spec"]: r for r in json.load(open(path))["runs"]}
    ra, rb = ({c["id"]: c for c in runs[s]["clips"]} for s in (a, b))
    for drop_loops in (False, True):
        ids = [i for i in ra if not (drop_loops and ("loop" in ra[i]["stops"] or "loop" in rb[i]["stops"]))]
        ea, eb = [ra[i]["errors"] for i in ids], [rb[i]["errors"] for i in ids]
        refs = [ra[i]["ref_words"] for i in ids]
        lo, hi = bootstrap_ci(ea, refs, eb)
        w, d = sum(refs), sum(eb) - sum(ea)
        print(f"{'without loops' if drop_loops else 'all clips'}: {len(ids)} clips, {w} words: "
              f"WER {100 * sum(ea) / w:.1f} -> {100 * sum(eb) / w:.1f}, "
              f"delta {100 * d / w:+.1f} pp [{100 * lo:+.1f}, {100 * hi:+.1f}] ({d:+d} words)")


if __name__ == "__main__":
    main(*sys.argv[1:4])
