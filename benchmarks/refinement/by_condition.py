"""Every row's WER difference from the first row of a bench report, per condition (clip category)
and over all clips, with the bench's own paired bootstrap over clips (asrquant.eval.report's
delta_cell: 95 %, words in parentheses), and its new failures (loops, length limit, empty output)
per condition. A markdown table.

    python benchmarks/refinement/by_condition.py REPORT.json
"""

import json
import sys

from asrquant.eval.report import delta_cell, new_failures, short_label


def main(path: str) -> None:
    runs = json.load(open(path))["runs"]
    base, rows = runs[0], runs[1:]
    cats = sorted({c["category"] for c in base["clips"]})

    def part(run: dict, cat: str | None) -> dict:
        return {**run, "clips": [c for c in run["clips"] if cat is None or c["category"] == cat]}

    print(f"Δ WER pp from `{short_label(base['spec'])}` [95% paired bootstrap over clips] (words); new failures\n")
    names = " | ".join(f"`{short_label(r['spec'])}`" for r in rows)
    print(f"| condition | clips | words | base WER % | {names} |")
    print("|---|---:|---:|---:|" + "---|" * len(rows))
    for cat in [*cats, None]:
        b = part(base, cat)
        words = sum(c["ref_words"] for c in b["clips"])
        wer = 100 * sum(c["errors"] for c in b["clips"]) / words
        cells = []
        for r in rows:
            p = part(r, cat)
            n = len(new_failures(b, p))
            cells.append(delta_cell(b, p) + (f"; {n} new" if n else ""))
        print(f"| {cat or '**all**'} | {len(b['clips'])} | {words} | {wer:.1f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
