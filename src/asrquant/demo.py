"""`asrquant demo`: the main job on the embedded default model, on a fresh machine, offline.

    1. build (once, cached) the default robustness sets from the shipped sentences: an
       evaluation set (clean + the eight Voices-in-the-Wild conditions) and a disjoint
       calibration set
    2. export the model for the `cpu` target (cached by model and target version): the int4
       ONNX artifact, GPTQ calibrated on the calibration set, with its model card
    3. bench torch fp32, the int4 artifact and faster-whisper (int8, float32) on the evaluation
       set, each in its own process; print one short table first (WER with its interval, size and
       RTF ratios, peak RSS, the CPU), then the details; write report.md / report.json / figures
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

TARGET = "cpu"


def _export(model: str, out: Path, calib: Path) -> None:
    """The target's artifact, in its own process (torch freed before the bench); kept when the
    cached one is whole and made by the same target version."""
    from .artifact import verify
    from .errors import AsrQuantError
    from .export.targets import load_target
    from .runtime.onnx_layout import READABLE_LAYOUTS

    target = load_target(TARGET)
    if (out / "manifest.json").is_file():
        try:
            manifest = verify(out)
            if manifest.get("layout") in READABLE_LAYOUTS and manifest.get("target") == target.to_dict():
                return
        except AsrQuantError:
            pass  # incomplete or changed: export again
    # The cache's own directory: a stale or incomplete export there is replaced (--overwrite).
    cmd = [sys.executable, "-m", "asrquant.cli", "export", model, "--target", TARGET, "--calib", str(calib),
           "--out", str(out), "--overwrite"]
    if subprocess.run(cmd).returncode != 0:
        raise AsrQuantError(f"export failed: {' '.join(cmd)}")


def demo_specs(model: str, artifact: Path) -> dict[str, str]:
    """spec -> short label, in bench order (the first is the baseline)."""
    return {model: "fp32", str(artifact): f"int4 ({TARGET})", f"faster-whisper:{model}:int8": "faster-whisper int8",
            f"faster-whisper:{model}:float32": "faster-whisper fp32"}


def headline(report: dict) -> str:
    """float, the int4 artifact, faster-whisper int8: WER with its interval, size against the float16
    source, RTF against faster-whisper int8's, peak RSS."""
    from .eval.report import delta_cell, labels, wer_cell

    runs = dict(zip(labels(report), report["runs"]))
    base, fw = runs["fp32"], runs["faster-whisper int8"]
    s = report["settings"]
    lines = [f"{s['clips']} clips, greedy, {s['threads']} threads; CPU: {s.get('cpu', 'unknown')}. Size ÷ the float16 "
             "source (the CTranslate2 files); RTF ÷ faster-whisper int8's (below 1: faster).", "",
             "| | WER % [95% CI] | Δ vs fp32 [95% CI] (words) | size MB | size ÷ fp16 | RTF | RTF ÷ fw int8 "
             "| peak RSS MB |", "|---|---:|---|---:|---:|---:|---:|---:|"]
    for lab in ("fp32", f"int4 ({TARGET})", "faster-whisper int8"):
        r = runs[lab]
        lines.append(f"| {lab} | {wer_cell(r)} | {delta_cell(base, r)} | {r['size_bytes'] / 1e6:.1f} "
                     f"| {r['size_bytes'] / base['size_bytes']:.2f} | {r['rtf']:.3f} | {r['rtf'] / fw['rtf']:.2f} "
                     f"| {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def run_demo(args) -> int:
    from rich.console import Console

    from .bench import bench
    from .cache import cache_dir
    from .cpu import describe_cpu
    from .data.default_set import default_bench_set, default_calib_set
    from .eval.report import tradeoff_path, write_reports

    console = Console(stderr=True)
    console.print("[bold]asrquant demo[/] 1/3: the default evaluation and calibration sets "
                  "(cached after the first run)")
    eval_set, calib_set = default_bench_set() / "manifest.jsonl", default_calib_set() / "manifest.jsonl"
    artifact = cache_dir() / "demo" / f"{Path(args.model).name}-{TARGET}"
    console.print(f"[bold]asrquant demo[/] 2/3: asrquant export {args.model} --target {TARGET} -> {artifact}")
    _export(args.model, artifact, calib_set)
    console.print("[bold]asrquant demo[/] 3/3: bench, each model in its own process")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    specs = demo_specs(args.model, artifact)
    report = bench(list(specs), [str(eval_set)], threads=args.threads)
    report["labels"] = specs
    report["settings"]["cpu"] = describe_cpu()
    command = "asrquant " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    head = headline(report)
    md = write_reports(report, command, out / "report.json", None, out / "wer_per_category.png")
    (out / "report.md").write_text(f"# asrquant demo: {args.model}\n\n{head}\nDetails:\n\n{md}", encoding="utf-8")
    print(head)
    print("Details:\n")
    print(md)
    console.print(f"reports written to {out}/report.md, report.json, wer_per_category.png and "
                  f"{tradeoff_path(out / 'wer_per_category.png').name}; the artifact and its model card: {artifact}")
    return 0
