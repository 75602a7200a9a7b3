"""The `asrquant` command: load -> calibrate -> quantize -> export -> run -> measure."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys

from . import options
from .errors import AsrQuantError


def cmd_transcribe(args) -> int:
    from .audio import check_speech, load_audio
    from .engines import open_engine
    from .eval.text import normalize

    engine = open_engine(args.model, threads=args.threads)
    status = 0
    for path in args.audio:
        try:
            audio = check_speech(load_audio(path), path)
        except AsrQuantError as e:
            print(f"asrquant: error: {e}", file=sys.stderr)
            status = 2
            continue
        out = engine.transcribe(audio, args.language, args.beam, args.max_new_tokens)
        if not normalize(out.text, out.language or "en"):
            # Speech (check_speech passed) that gives no word: what numerically broken weights give
            # ("!!!!!!!!"); flagged, never passed off as a transcript.
            out.stops = [*out.stops, "no_words"]
            print(f"asrquant: warning: {path}: the model's output has no word ({out.text!r}) although the audio "
                  "holds sound; are its weights broken?", file=sys.stderr)
            status = status or 1
        if args.json:
            print(json.dumps({"audio": path, "text": out.text, "language": out.language, "stops": out.stops},
                             ensure_ascii=False))
        else:
            flags = "".join(f" [{s}]" for s in out.stops if s != "eot")
            print(f"{path}: {out.text}{flags}" if len(args.audio) > 1 else f"{out.text}{flags}")
    return status


def require_matplotlib() -> None:
    """Before a long run, not after it: --plot needs matplotlib."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise AsrQuantError("--plot needs matplotlib: pip install 'asrquant[plots]'")


def cmd_bench(args) -> int:
    from .artifact import check_report_path
    from .bench import bench
    from .eval.report import write_reports

    if args.plot:
        require_matplotlib()
    # Before the run, not after it: a report that cannot be written loses the whole measurement.
    for option, path in (("--json", args.json), ("--markdown", args.markdown), ("--plot", args.plot)):
        if path is not None:
            check_report_path(path, option)
    command = "asrquant " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    def save(partial: dict) -> None:
        """Every finished run is on disk at once: an interrupt or a crash later keeps it."""
        if args.json or args.markdown:
            write_reports(partial, command, args.json, args.markdown)

    report = bench(args.model, args.data, language=args.language, beam=args.beam, threads=args.threads,
                   limit=args.limit, max_new_tokens=args.max_new_tokens, repeat=args.repeat, calib=args.calib,
                   jobs=args.jobs, on_report=save)
    print(write_reports(report, command, args.json, args.markdown, args.plot))
    return 1 if any("error" in r for r in report["runs"]) else 0


def cmd_quantize(args) -> int:
    from .quant.command import cmd_quantize as run  # torch: imported only when quantizing

    return run(args)


def cmd_recipe_auto(args) -> int:
    from .quant.sensitivity import cmd_recipe_auto as run  # torch: imported only when measuring

    return run(args)


def cmd_targets(args) -> int:
    from .export.targets import all_targets, describe

    print(describe(all_targets()), end="")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(args)


def _decode_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--language", default=None, help="force this language (default: each clip's, else detect)")
    p.add_argument("--beam", type=options.beam, default=1, help="beam size (1 = greedy)")
    p.add_argument("--threads", type=options.threads, default=2)
    p.add_argument("--max-new-tokens", type=options.max_new_tokens, default=224)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asrquant", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("transcribe", help="transcribe audio files with a model or an exported artifact")
    p.add_argument("model", help="registry name (whisper-base, whisper-tiny.en), Whisper or Qwen3-ASR directory, "
                                 "a directory saved by quantize, DIR@RECIPE, or an ONNX export")
    p.add_argument("audio", nargs="+")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    _decode_flags(p)
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("bench", help="measure models side by side on the same clips")
    p.add_argument("--model", action="append", required=True,
                   help="SPEC; repeat for several (the first is the baseline)")
    p.add_argument("--data", action="append", required=True, help="manifest.jsonl; repeat for several")
    p.add_argument("--limit", type=options.positive_int, default=None, help="only the first N clips")
    p.add_argument("--repeat", type=options.int_at_least(1, 100), default=1,
                   help="interleaved repetitions for timing (median RTF)")
    p.add_argument("--calib", help="calibration manifest for MODEL@RECIPE specs (quantized once, cached)")
    p.add_argument("--jobs", type=options.int_at_least(1, 64), default=1,
                   help="models quantized and run at once (accuracy tables; timings then share the CPU)")
    p.add_argument("--json", help="write the JSON report here")
    p.add_argument("--markdown", help="write the markdown report here")
    p.add_argument("--plot", help="write a PNG of WER per category here")
    _decode_flags(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="the main job on the embedded default model and data")
    p.add_argument("--out", default="runs/demo", help="where the reports go")
    p.add_argument("--model", default="whisper-base")
    p.add_argument("--threads", type=options.threads, default=2)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("quantize", help="calibrate on real audio and quantize a model by a recipe")
    p.add_argument("model",
                   help="registry name, HF or CTranslate2 Whisper directory, or a Qwen3-ASR / Mega-ASR directory")
    p.add_argument("--recipe", required=True, help="built-in recipe name or a recipe .toml")
    p.add_argument("--calib", help="calibration manifest.jsonl (real or synthetic audio, not the eval set)")
    options.add_calib_clips(p)
    p.add_argument("--out", required=True, help="output directory (written atomically)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out if it exists (it is refused otherwise, and never the input itself)")
    p.add_argument("--threads", type=options.threads, default=2)
    p.add_argument("--verbose", action="store_true", help="print the per-layer report")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("recipe", help="make recipes")
    rsub = p.add_subparsers(dest="recipe_command", required=True)
    p = rsub.add_parser("auto", help="a mixed-precision recipe chosen by measured sensitivity under a bit budget")
    p.add_argument("model", help="as for quantize")
    p.add_argument("--calib", required=True, help="calibration manifest.jsonl (not the eval set)")
    p.add_argument("--budget", required=True, help="mean bits per weight, token table included (4.5 or 4.5bpw)")
    p.add_argument("--out", required=True, help="the recipe .toml to write")
    p.add_argument("--clips", type=int, default=8, help="clips the sensitivities are measured on")
    p.add_argument("--recipe-clips", type=int, default=32, help="calibration clips the recipe asks for")
    p.add_argument("--refine", default=None, help="a refinement for every rule (dwq)")
    p.add_argument("--costs", default="rtn", choices=("rtn", "gptq"),
                   help="each tensor's cost with it rounded to nearest (default) or quantized by GPTQ, as the "
                        "recipe will quantize it (Hessians from the --recipe-clips clips the costs are not "
                        "measured on)")
    p.add_argument("--threads", type=options.threads, default=2)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_recipe_auto)

    p = sub.add_parser("targets", help="list the deployment targets (asrquant export MODEL --target NAME)")
    p.set_defaults(func=cmd_targets)

    from .export import command as export_command

    export_command.register(sub)

    from .data import cli as data_cli

    data_cli.register(sub)

    from .web import command as web_command

    web_command.register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every cleanup (temporary directories, bench workers,
    the partial report) runs for it too."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (main() called from a library's thread): leave it
        previous = None
    try:
        return int(args.func(args) or 0)
    except AsrQuantError as e:
        print(f"asrquant: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print("asrquant: terminated" if isinstance(e, Terminated) else "asrquant: interrupted", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except Exception as e:
        # A bug, not bad input (that is an AsrQuantError, exit 2): one line and exit 1, the
        # traceback with ASRQUANT_DEBUG=1 for the report.
        if os.environ.get("ASRQUANT_DEBUG"):
            raise
        print(f"asrquant: internal error: {type(e).__name__}: {e} (ASRQUANT_DEBUG=1 shows the traceback; "
              "please report it)", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
