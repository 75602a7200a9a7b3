"""Several builds of one recipe against fp32 on the same clips: each build's difference, and the
difference of their mean (each clip's word errors averaged over the builds), with paired
bootstrap intervals over clips; the builds' spread (largest minus smallest difference) beside it.
A recipe's figure from one build is one draw of that spread (builds.sh).

    python benchmarks/refinement/builds_mean.py REPORT.json FP32_SPEC BUILD_SPEC [BUILD_SPEC ...]
"""

import json
import sys

import numpy as np

from asrquant.eval.metrics import bootstrap_ci


def main(path: str, base: str, builds: list[str]) -> None:
    runs = {r["spec"]: r for r in json.load(open(path))["runs"]}
    ids = [c["id"] for c in runs[base]["clips"]]
    clips = {s: {c["id"]: c for c in runs[s]["clips"]} for s in [base, *builds]}
    refs = np.array([clips[base][i]["ref_words"] for i in ids], dtype=float)
    fp = np.array([clips[base][i]["errors"] for i in ids], dtype=float)
    words = refs.sum()
    deltas = []
    for s in builds:
        e = np.array([clips[s][i]["errors"] for i in ids], dtype=float)
        lo, hi = bootstrap_ci(fp, refs, e)
        loops = sum("loop" in clips[s][i]["stops"] and "loop" not in clips[base][i]["stops"] for i in ids)
        d, n = 100 * (e.sum() - fp.sum()) / words, int(e.sum() - fp.sum())
        deltas.append(d)
        print(f"{s}: {d:+.2f} pp [{100 * lo:+.2f}, {100 * hi:+.2f}] ({n:+d} words), {loops} new loops")
    mean = np.mean([[clips[s][i]["errors"] for i in ids] for s in builds], axis=0)
    lo, hi = bootstrap_ci(fp, refs, mean)
    d = mean.sum() - fp.sum()
    print(f"mean of {len(builds)} builds: {100 * d / words:+.2f} pp [{100 * lo:+.2f}, {100 * hi:+.2f}] "
          f"({d:+.1f} words of {int(words)}); builds' spread {max(deltas) - min(deltas):.2f} pp")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
