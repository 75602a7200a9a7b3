"""Per language of a bench report (the real speech of ../shared/data): the float row's WER (CER for
languages written without spaces) with its 95% bootstrap interval over clips, and every other
row's rate, its delta and whether that delta exceeds the float interval's half-width (the issue's
"no language worse by more than its float WER's bootstrap interval"); failures by row.

    python benchmarks/refinement/per_language.py REPORT.json
"""

import json
import sys

from merge import _failed  # this folder's merge.py: what counts as a failed clip, one definition

from asrquant.eval.metrics import bootstrap_ci


def main(path: str) -> None:
    runs = json.load(open(path))["runs"]
    base = runs[0]
    langs = sorted({c["lang"] for c in base["clips"]})
    print(f"| language | clips | units | {base['spec']} [95% CI] | "
          + " | ".join(f"{r['spec'].rstrip('/').split('/')[-1]} (Δ)" for r in runs[1:]) + " |")
    print("|---|---:|---:|---|" + "---|" * (len(runs) - 1))
    for lang in langs:
        idx = [i for i, c in enumerate(base["clips"]) if c["lang"] == lang]
        refs = [base["clips"][i]["ref_words"] for i in idx]
        e0 = [base["clips"][i]["errors"] for i in idx]
        lo, hi = bootstrap_ci(e0, refs)
        w0 = sum(e0) / sum(refs)
        half = max(w0 - lo, hi - w0)
        cells = []
        for r in runs[1:]:
            w = sum(r["clips"][i]["errors"] for i in idx) / sum(refs)
            cells.append(f"{100 * w:.1f} ({100 * (w - w0):+.1f}{' worse than the interval' if w - w0 > half else ''})")
        print(f"| {lang} | {len(idx)} | {sum(refs)} | {100 * w0:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] | "
              + " | ".join(cells) + " |")
    for r in runs:
        failed = [c["id"] for c in r["clips"] if _failed(c)]
        print(f"\n{r['spec']}: failures {len(failed)} {failed}", end="")
    print()


if __name__ == "__main__":
    main(sys.argv[1])
