"""`asrquant demo`: the main job on the embedded default model, on a fresh machine, offline.

    1. build (once, cached) the default robustness sets from the shipped sentences: an
       evaluation set (clean + the eight Voices-in-the-Wild conditions) and a disjoint
       calibration set
    2. export the model to ONNX, fp32 and a 4-bit variant (GPTQ calibrated on the calibration
       set) side by side in one artifact (cached by model and recipe)
    3. bench ours (torch fp32, ONNX fp32, ONNX int4) beside faster-whisper (float32, int8) on the
       evaluation set, each in its own process, and write report.md / report.json / a plot
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

RECIPE = "gptq-int4-g64-emb8"  # 4-bit Linears, 8-bit token embedding (see the recipe)


def _export(model: str, out: Path, calib: Path, threads: int) -> None:
    """fp32 export plus the RECIPE variant, in their own processes (torch freed before the bench)."""
    from .artifact import verify
    from .errors import AsrQuantError
    from .runtime.onnx_layout import LAYOUT_VERSION

    base = [sys.executable, "-m", "asrquant.cli", "export", model, "--out", str(out)]
    # The cache's own directory: a stale or incomplete export there is replaced.
    steps = [base + ["--overwrite"], base + ["--recipe", RECIPE, "--calib", str(calib), "--variant", "int4"]]
    if (out / "manifest.json").is_file() and any(out.glob("*.int4.onnx")):
        try:
            manifest = verify(out)
            recipe = (manifest.get("variants", {}).get("int4", {}).get("recipe") or {}).get("name")
            if manifest.get("layout") == LAYOUT_VERSION and recipe == RECIPE:
                return
        except AsrQuantError:
            pass  # incomplete or changed: export again
    for cmd in steps:
        if subprocess.run(cmd).returncode != 0:
            raise AsrQuantError(f"export failed: {' '.join(cmd)}")


def demo_specs(model: str, onnx_dir: Path) -> list[str]:
    return [model, str(onnx_dir), f"{onnx_dir}@int4",
            f"faster-whisper:{model}:float32", f"faster-whisper:{model}:int8"]


def run_demo(args) -> int:
    from rich.console import Console

    from .bench import bench
    from .cache import cache_dir
    from .data.default_set import default_bench_set, default_calib_set
    from .eval.report import write_reports

    console = Console(stderr=True)
    console.print("[bold]asrquant demo[/] 1/3: the default evaluation and calibration sets "
                  "(cached after the first run)")
    eval_set, calib_set = default_bench_set() / "manifest.jsonl", default_calib_set() / "manifest.jsonl"
    onnx_dir = cache_dir() / "demo" / f"{Path(args.model).name}-onnx"
    console.print(f"[bold]asrquant demo[/] 2/3: ONNX export of {args.model}, fp32 and {RECIPE} -> {onnx_dir}")
    _export(args.model, onnx_dir, calib_set, args.threads)
    console.print("[bold]asrquant demo[/] 3/3: bench, each model in its own process")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = bench(demo_specs(args.model, onnx_dir), [str(eval_set)], threads=args.threads)
    command = "asrquant " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    md = write_reports(report, command, out / "report.json", out / "report.md", out / "wer_per_category.png")
    print(md)
    console.print(f"reports written to {out}/report.md, report.json and wer_per_category.png")
    return 0
