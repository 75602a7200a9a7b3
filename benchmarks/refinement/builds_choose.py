"""A candidate judged on several builds against a base judged on several builds, on the same clips:
each build's difference from fp32, each side's mean (each clip's word errors averaged over its
builds), and the candidate's mean against the base's mean with a paired bootstrap interval over
clips. One build reads up to ~1 pp apart from another of the same recipe on 15,093 words
(builds.sh), so a choice between recipes compares means of builds, not one draw of each.

The rule: "chosen" if the candidate's mean has fewer word errors than the base's and no more new
failures (the bench's own: a loop, the length limit or an empty output where fp32 has none) on
average over its builds.

    python benchmarks/refinement/builds_choose.py REPORT.json FP32_SPEC --base B1 B2 --candidate C1 C2
"""

import argparse
import json

import numpy as np

from asrquant.eval.metrics import bootstrap_ci
from asrquant.eval.report import new_failures


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("report")
    p.add_argument("fp32")
    p.add_argument("--base", nargs="+", required=True)
    p.add_argument("--candidate", nargs="+", required=True)
    a = p.parse_args()
    runs = {r["spec"]: r for r in json.load(open(a.report))["runs"]}
    ids = [c["id"] for c in runs[a.fp32]["clips"]]
    clips = {s: {c["id"]: c for c in runs[s]["clips"]} for s in [a.fp32, *a.base, *a.candidate]}
    refs = np.array([clips[a.fp32][i]["ref_words"] for i in ids], dtype=float)
    fp = np.array([clips[a.fp32][i]["errors"] for i in ids], dtype=float)
    words = int(refs.sum())

    def errors(spec: str) -> np.ndarray:
        return np.array([clips[spec][i]["errors"] for i in ids], dtype=float)

    def failures(spec: str) -> int:
        return len(new_failures(runs[a.fp32], runs[spec]))

    def delta(e_from: np.ndarray, e_to: np.ndarray) -> str:
        lo, hi = bootstrap_ci(e_from, refs, e_to)
        d = e_to.sum() - e_from.sum()
        return f"{100 * d / words:+.2f} pp [{100 * lo:+.2f}, {100 * hi:+.2f}] ({d:+.1f} words of {words})"

    means, fails = {}, {}
    for side, specs in (("base", a.base), ("candidate", a.candidate)):
        for s in specs:
            print(f"{side} build {s}: vs fp32 {delta(fp, errors(s))}, {failures(s)} new failures")
        means[side] = np.mean([errors(s) for s in specs], axis=0)
        fails[side] = float(np.mean([failures(s) for s in specs]))
        print(f"{side}, mean of {len(specs)} builds: vs fp32 {delta(fp, means[side])}, "
              f"{fails[side]:.1f} new failures on average")
    d = means["candidate"].sum() - means["base"].sum()
    chosen = d < 0 and fails["candidate"] <= fails["base"]
    print(f"candidate mean vs base mean: {delta(means['base'], means['candidate'])}; "
          f"new failures {fails['base']:.1f} -> {fails['candidate']:.1f}")
    print(f"{'chosen' if chosen else 'not chosen'}")


if __name__ == "__main__":
    main()
