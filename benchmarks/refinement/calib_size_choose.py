"""calib-size.sh's rule on its tuning bench: the candidate (qall, 348 clips) is chosen only if it
has fewer word errors than the shipped calibration (q32) over the tuning clips and no more failures
(loops, length-limit stops, empty outputs). Prints "chosen" or "not chosen" and the counts.

    python benchmarks/refinement/calib_size_choose.py TUNE.json Q32_SPEC QALL_SPEC
"""

import json
import sys

FAILURES = ("loop", "max_length", "empty")


def counts(run: dict) -> tuple[int, int]:
    return sum(c["errors"] for c in run["clips"]), sum(run["failures"][k] for k in FAILURES)


def main(path: str, base: str, candidate: str) -> None:
    runs = {r["spec"]: r for r in json.load(open(path))["runs"]}
    (eb, fb), (ec, fc) = counts(runs[base]), counts(runs[candidate])
    chosen = ec < eb and fc <= fb
    print(f"{'chosen' if chosen else 'not chosen'}: word errors {eb} -> {ec}, failures {fb} -> {fc} "
          f"({runs[base]['ref_words']} words, {runs[base]['n']} clips)")


if __name__ == "__main__":
    main(*sys.argv[1:4])
