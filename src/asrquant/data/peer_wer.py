"""Corpus WER per category of a data manifest, measured with faster-whisper (a peer, not ours).

Used to calibrate the degradation ranges in :mod:`.wild` before asrquant's own decoder existed,
and kept as a cross-check. Greedy, temperature 0, no conditioning on previous text, no
timestamps, language forced -- the settings the bench uses for every engine.

    python -m asrquant.data.peer_wer runs/data/wild-eval [--model whisper-base] [--out table.json]

``--model`` is a CTranslate2 directory or a registry name (resolved with asrquant.models.whisper.hub).
Needs the ``peers`` extra (faster-whisper).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

from ..errors import AsrQuantError
from .common import read_jsonl


def transcribe_manifest(manifest: str | Path, model: str = "whisper-base", threads: int = 0,
                        per_category: int | None = None, log: Path | None = None,
                        categories: list[str] | None = None) -> list[dict]:
    from faster_whisper import WhisperModel

    from ..eval.metrics import score

    mpath = Path(model)
    if not mpath.is_dir():
        from ..models.whisper import hub

        mpath = hub.resolve(model)
    manifest = Path(manifest)
    root = manifest if manifest.is_dir() else manifest.parent
    rows = read_jsonl(manifest)
    if categories:
        rows = [r for r in rows if r.get("category", "all") in categories]
    if per_category is not None:
        seen: dict[str, int] = defaultdict(int)
        kept = []
        for row in rows:
            c = row.get("category", "all")
            if seen[c] < per_category:
                seen[c] += 1
                kept.append(row)
        rows = kept
    logf = open(log, "w", encoding="utf-8") if log else None
    fw = WhisperModel(str(mpath), device="cpu", compute_type="float32", cpu_threads=threads)
    out = []
    for row in rows:
        segments, _ = fw.transcribe(
            str(root / row["audio"]),
            beam_size=1,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            language=row.get("lang", "en"),
            vad_filter=False,
        )
        hyp = "".join(s.text for s in segments).strip()
        s = score(row["text"], hyp, row.get("lang", "en"))
        out.append({"id": row["id"], "category": row.get("category", "all"), "errors": s.errors,
                    "ref_words": s.ref_words, "hyp": hyp, "ref": row["text"]})
        if logf:
            logf.write(json.dumps(out[-1]) + "\n")
            logf.flush()
    if logf:
        logf.close()
    return out


def table(results: list[dict]) -> dict[str, dict]:
    agg: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in results:
        a = agg[r["category"]]
        a[0] += r["errors"]
        a[1] += r["ref_words"]
        a[2] += 1
    return {c: {"clips": n, "ref_words": w, "errors": e, "wer": e / max(w, 1)} for c, (e, w, n) in agg.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m asrquant.data.peer_wer", description=__doc__.split("\n")[0])
    ap.add_argument("manifest")
    ap.add_argument("--model", default="whisper-base")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", help="write per-clip results and the table as JSON here")
    ap.add_argument("--per-category", type=int, default=None, metavar="N",
                    help="only the first N clips of each category")
    ap.add_argument("--categories", help="comma list: only these categories")
    ap.add_argument("--log", help="append each clip's result to this JSONL as it is scored")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        results = transcribe_manifest(args.manifest, args.model, args.threads, args.per_category,
                                      Path(args.log) if args.log else None,
                                      args.categories.split(",") if args.categories else None)
    except AsrQuantError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tab = table(results)
    order = ["clean", "noise", "far_field", "obstructed", "distortion", "recording", "echo", "dropout", "mixed"]
    cats = [c for c in order if c in tab] + sorted(c for c in tab if c not in order)
    print(f"{'category':<12} {'clips':>5} {'words':>6} {'WER %':>7}")
    for c in cats:
        t = tab[c]
        print(f"{c:<12} {t['clips']:>5} {t['ref_words']:>6} {100 * t['wer']:>7.2f}")
    print(f"({len(results)} clips in {time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    if args.out:
        Path(args.out).write_text(json.dumps({"table": tab, "clips": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
