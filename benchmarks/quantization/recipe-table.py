"""One table of every recipe from per-model bench reports (the README's recipe table).

    python benchmarks/quantization/recipe-table.py \\
        runs/issue4/whisper-tiny.en-eval-225.json runs/issue4/whisper-base-eval-225.json

Each report's first run is its float baseline; a row is a recipe (the part of the spec after
``@``), a column group per report: WER, delta vs float with its 95% paired bootstrap interval
and the difference in words, failures on clips where float has none.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from asrquant.eval.report import delta_cell, new_failures


def label(spec: str) -> str:
    return spec.split("@", 1)[1] if "@" in spec else ("float32" if ":" not in spec
                                                      else spec.split(":")[0] + " " + spec.split(":")[-1])


def main(paths: list[str]) -> None:
    reports = [json.loads(Path(p).read_text()) for p in paths]
    models = [r["runs"][0]["spec"] for r in reports]
    head = "| recipe | " + " | ".join(f"{m} MB | bits/w | WER | Δ [95% CI] (words) | new fail." for m in models) + " |"
    print(head)
    print("|---|" + "---:|---:|---:|---|---:|" * len(models))
    rows = {}
    for r in reports:
        base = r["runs"][0]
        for run in r["runs"]:
            cells = rows.setdefault(label(run["spec"]), [])
            nf = "—" if run is base else str(len(new_failures(base, run)))
            bits = run.get("bits_per_weight")
            bits = "—" if bits is None else f"{bits:.2f}"
            cells.append(f"{run['size_bytes'] / 1e6:.1f} | {bits} | {100 * run['wer']:.1f} | "
                         f"{delta_cell(base, run)} | {nf}")
    for name, cells in rows.items():
        print(f"| `{name}` | " + " | ".join(cells) + " |")
    words = [sum(c.get("ref_words", 0) for c in r["runs"][0]["clips"]) for r in reports]
    print(f"\n{reports[0]['settings']['clips']} clips, {words[0]} reference words "
          f"(one word = {100 / words[0]:.2f} pp).")


if __name__ == "__main__":
    main(sys.argv[1:])
