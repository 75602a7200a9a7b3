"""``asrquant data ...``: make the robustness benchmark sets.

    asrquant data tts  --text SENTENCES.txt --out DIR [--seed S]      (or --split calib|eval|all)
    asrquant data wild --from MANIFEST --out DIR [--conditions noise,echo,...] [--seed S] [--each]
    asrquant data default [--calib | --calib-pool]                     (build or find the cached set)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import options


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="make robustness benchmark sets (TTS + degradations)",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = data.add_subparsers(dest="data_command", required=True)

    from .wild import CONDITIONS

    t = sub.add_parser("tts", help="clean English speech from sentences (piper-tts, joe voice)")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", metavar="SENTENCES.txt", help="one sentence a line")
    src.add_argument("--split", choices=["calib", "eval", "all"], help="the shipped sentences")
    t.add_argument("--out", required=True, metavar="DIR")
    t.add_argument("--overwrite", action="store_true", help="replace DIR if it exists (refused otherwise)")
    t.add_argument("--seed", type=options.seed, default=0)
    t.add_argument("--limit", type=options.positive_int, metavar="N", help="only the first N sentences")
    t.add_argument("--prefix", default=None, help="clip id prefix (default: the split name or 'tts')")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_tts)

    w = sub.add_parser("wild", help="apply Voices-in-the-Wild degradations to a manifest's clips")
    w.add_argument("--from", dest="source", required=True, metavar="MANIFEST",
                   help="manifest.jsonl (or the directory holding it)")
    w.add_argument("--out", required=True, metavar="DIR")
    w.add_argument("--overwrite", action="store_true", help="replace DIR if it exists (refused otherwise)")
    w.add_argument("--conditions", nargs="+", default=None, metavar="C",
                   help=f"any of: {', '.join(CONDITIONS)} (space or comma separated; default all)")
    w.add_argument("--seed", type=options.seed, default=0)
    w.add_argument("--each", action="store_true",
                   help="apply every chosen condition to every clip (default: one per clip, balanced)")
    w.add_argument("--no-clean", action="store_true", help="do not copy the clean originals alongside")
    w.add_argument("--quiet", action="store_true", help="no progress bar")
    w.set_defaults(func=_wild)

    d = sub.add_parser("default", help="build (once) and print the cached default bench set")
    which = d.add_mutually_exclusive_group()
    which.add_argument("--calib", action="store_true", help="the default calibration set instead (64 clips)")
    which.add_argument("--calib-pool", action="store_true",
                       help="the calibration pool instead: every calibration sentence, two seeds, clean and "
                            "degraded (348 clips; gptq-int4-g64-enc32-emb4-dwq's calibration); prints its manifest")
    d.add_argument("--cache-dir", default=None)
    d.set_defaults(func=_default)


def _tts(args) -> int:
    from ..artifact import prepare_out
    from . import tts
    from .sentences import all_sentences, load_sentences, read_sentence_file

    prepare_out(args.out, overwrite=args.overwrite, inputs=[args.text, args.text and str(Path(args.text).parent)])
    if args.text:
        sentences, prefix = read_sentence_file(args.text), args.prefix or "tts"
    elif args.split == "all":
        sentences, prefix = all_sentences(), args.prefix or "all"
    else:
        sentences, prefix = load_sentences(args.split), args.prefix or args.split
    if args.limit is not None:
        sentences = sentences[: args.limit]
    out = tts.generate(sentences, args.out, seed=args.seed, prefix=prefix, show_progress=not args.quiet)
    print(f"{len(sentences)} clips -> {out}")
    return 0


def _wild(args) -> int:
    from ..artifact import prepare_out
    from . import wild

    source = Path(args.source)
    prepare_out(args.out, overwrite=args.overwrite,
                inputs=[args.source, str(source.parent) if source.is_file() else args.source])
    conds = None
    if args.conditions:
        conds = ",".join(args.conditions)
    out = wild.generate(args.source, args.out, conditions=conds, seed=args.seed, each=args.each,
                        include_clean=not args.no_clean, show_progress=not args.quiet)
    from .common import read_jsonl

    rows = read_jsonl(out)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["category"]] = counts.get(r["category"], 0) + 1
    print(f"{len(rows)} clips -> {out}  (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")")
    return 0


def _default(args) -> int:
    from . import default_set

    if args.calib_pool:
        path = default_set.default_calib_pool(args.cache_dir, show_progress=True)
    else:
        path = (default_set.default_calib_set if args.calib else default_set.default_bench_set)(args.cache_dir)
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    p = argparse.ArgumentParser(prog="asrquant")
    register(p.add_subparsers(dest="command", required=True))
    a = p.parse_args()
    sys.exit(a.func(a))
