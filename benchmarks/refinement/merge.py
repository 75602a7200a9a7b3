"""One table from several `asrquant bench --json` reports on the same clips, deltas vs the first run.

    python benchmarks/refinement/merge.py runs/.../report-gptq.json runs/.../report-block.json \
        --out benchmarks/refinement/results/whisper-tiny.en/merged.md

For when the models could not all be benched in one run (a shared machine, a session's time): the
float run is taken once (the first run of the first report; greedy decoding is deterministic, so a
second float run would give the same text), every other run is paired with it clip by clip with the
bench's own bootstrap (quant.eval.metrics.bootstrap_ci, 2000 resamples, seed 0). Clips must match.
``--base TEXT``: pair against the first run whose spec contains TEXT instead (two quantized models
against each other, e.g. the two calibration halves of halves.sh).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from asrquant.eval.metrics import bootstrap_ci


def _failures(run: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in run["failures"].items() if v) or "none"


def _failed(clip: dict) -> bool:
    """A clip whose decoding did not end at end-of-text (a loop, the length limit) or came out empty."""
    return bool(set(clip["stops"]) - {"eot"}) or not clip["hyp"].strip()


def _new_failures(base: dict, run: dict) -> int:
    """Clips that fail in ``run`` and not in the baseline (a failure float shares is not the quantization's)."""
    return sum(_failed(c) and not _failed(b) for b, c in zip(base["clips"], run["clips"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("reports", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--base", help="the baseline: the first run whose spec contains this (default: the first run)")
    a = ap.parse_args()
    runs, seen = [], set()
    for p in a.reports:
        for r in json.loads(Path(p).read_text())["runs"]:
            if r["spec"] not in seen:
                seen.add(r["spec"])
                runs.append((p, r))
    matching = [r for _, r in runs if a.base is None or a.base in r["spec"]]
    if not matching:
        raise SystemExit(f"no run's spec contains {a.base!r}")
    base = matching[0]
    ids = [c["id"] for c in base["clips"]]
    refs = [c["ref_words"] for c in base["clips"]]
    errs0 = [c["errors"] for c in base["clips"]]
    words = sum(refs)
    lines = [f"Merged from: {', '.join(a.reports)}", "",
             f"{len(ids)} clips, {words} reference words; Δ vs `{base['spec']}` with a 95% paired bootstrap interval.",
             "", "| model | bits/w | size MB | WER | Δ WER pp [95% CI] | words | failures | new failures | from |",
             "|---|---:|---:|---:|---|---:|---|---:|---|"]
    for p, r in runs:
        if [c["id"] for c in r["clips"]] != ids:
            raise SystemExit(f"{p}: {r['spec']} was run on other clips")
        errs = [c["errors"] for c in r["clips"]]
        wer = 100 * sum(errs) / words
        if r is base:
            delta = "baseline"
            dw = ""
        else:
            lo, hi = bootstrap_ci(errs0, refs, errs)
            d = 100 * (sum(errs) - sum(errs0)) / words
            delta = f"{d:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}]"
            dw = f"{sum(errs) - sum(errs0):+d}"
        bits = r.get("bits_per_weight")
        lines.append(f"| `{r['spec']}` | {bits if bits is None else round(bits, 3)} | {r['size_bytes'] / 1e6:.1f} | "
                     f"{wer:.2f} | {delta} | {dw} | {_failures(r)} | {_new_failures(base, r)} | {Path(p).name} |")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
