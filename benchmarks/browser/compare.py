"""Compare the page's transcripts (web/driver.mjs's JSON) with our Python onnxruntime runner on the
same transformers.js export: equal transcripts (and the clips that differ), WER of each against the
references, median RTF of each, the download against the fp16 model (2 bytes per parameter).

    python benchmarks/browser/compare.py ARTIFACT BROWSER.json MANIFEST... --out report.json --markdown report.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from asrquant.audio import load_audio
from asrquant.cpu import describe_cpu
from asrquant.engines import open_engine
from asrquant.eval.manifest import read_manifests
from asrquant.eval.metrics import corpus_wer, score


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("artifact")
    p.add_argument("browser")
    p.add_argument("manifests", nargs="+")
    p.add_argument("--params", type=int, required=True, help="the float model's parameter count (fp16 = 2 bytes each)")
    p.add_argument("--out", required=True)
    p.add_argument("--markdown", required=True)
    args = p.parse_args()
    browser = json.loads(Path(args.browser).read_text())
    page = {r["id"]: r for r in browser["results"]}
    engine = open_engine(args.artifact, threads=2)
    rows = []
    for clip in read_manifests(args.manifests):
        audio = load_audio(clip.audio)
        t = time.perf_counter()
        language = "en" if engine.transcriber.tokenizer.multilingual else None  # the page's language too
        text = engine.transcribe(audio, language, 1, 224).text.strip()
        seconds = time.perf_counter() - t
        b = page[clip.id]
        rows.append({"id": clip.id, "reference": clip.text, "python": text, "browser": b["text"],
                     "equal": text == b["text"], "rtf_python": seconds / b["audio_s"],
                     "rtf_browser": b["ms"] / 1000 / b["audio_s"]})
    def wer(key: str) -> float:
        return corpus_wer([score(r["reference"], r[key], "en") for r in rows])

    report = {
        "artifact": args.artifact, "cpu": describe_cpu(), "browser": {k: v for k, v in browser.items()
                                                                     if k != "results"},
        "clips": len(rows), "equal": sum(r["equal"] for r in rows),
        "differ": [{k: r[k] for k in ("id", "python", "browser")} for r in rows if not r["equal"]],
        "wer_python": wer("python"), "wer_browser": wer("browser"),
        "median_rtf_python": statistics.median(r["rtf_python"] for r in rows),
        "median_rtf_browser": statistics.median(r["rtf_browser"] for r in rows),
        "model_bytes": engine.size_bytes, "fp16_bytes": 2 * args.params,
        "rows": rows,
    }
    report["size_vs_fp16"] = report["model_bytes"] / report["fp16_bytes"]
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    md = [f"# {Path(args.artifact).name}: browser vs Python runner", "",
          f"CPU: {report['cpu']}; browser: {report['browser']['backend']}, {report['browser']['userAgent']}", "",
          f"- transcripts equal: {report['equal']} / {report['clips']}",
          f"- WER: browser {report['wer_browser']}, Python {report['wer_python']}",
          f"- median RTF: browser {report['median_rtf_browser']:.3f}, Python {report['median_rtf_python']:.3f}",
          f"- graphs {report['model_bytes'] / 1e6:.1f} MB = {report['size_vs_fp16']:.2f} x the fp16 model; "
          f"page download {report['browser']['downloadedBytes'] / 1e6:.1f} MB (JavaScript and WebAssembly included)",
          "", "| clip | Python | browser |", "|---|---|---|"]
    md += [f"| {d['id']} | {d['python']} | {d['browser']} |" for d in report["differ"]]
    Path(args.markdown).write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
