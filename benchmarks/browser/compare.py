"""The browser campaign's report for one model (run by run.sh): our int4 export and transformers.js'
own q4 (the round-to-nearest peer), both transcribed in the same page (web/driver.mjs's JSON), and
our Python onnxruntime runner over our export's very graphs.

- per clip, our browser transcript vs the Python runner's: how many are equal, and those that
  differ (with whether they still agree once normalised, and each one's errors against the reference)
- WER of ours and of the peer in the browser, and the paired bootstrap interval over clips of
  WER(peer) - WER(ours) (asrquant.eval.metrics.bootstrap_ci: the same resampled clips for both)
- median RTF in the browser (each export) and of the Python runner (ours, 2 threads)
- the bytes the page downloaded, the model files among them, against the fp16 model (2 bytes per
  parameter); the CPU and the load average sampled during the run

    python benchmarks/browser/compare.py --ours DIR BROWSER.json --peer DIR BROWSER.json --params N \\
        [--loadavg FILE] --out report.json --markdown report.md MANIFEST...
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from asrquant.artifact import read_manifest
from asrquant.audio import load_audio
from asrquant.cpu import describe_cpu
from asrquant.engines import open_engine
from asrquant.eval.manifest import read_manifests
from asrquant.eval.metrics import bootstrap_ci, corpus_wer, score
from asrquant.eval.text import normalize


def page_bytes(browser: dict) -> dict:
    """The page's download split into the model's files (served under /model/) and the rest."""
    model = sum(r["bytes"] for r in browser.get("resources", []) if "/model/" in r["name"])
    return {"total": browser["downloadedBytes"], "model_files": model, "code": browser["downloadedBytes"] - model}


def graph_bytes(artifact: str) -> int:
    m = read_manifest(artifact)
    return sum(m["files"][f]["bytes"] for f in m["graphs"].values())


def loadavg(path: str | None) -> dict | None:
    if not path or not Path(path).is_file():
        return None
    one = [float(line.split()[1]) for line in Path(path).read_text().splitlines() if line.strip()]
    return {"samples": len(one), "median_1min": statistics.median(one), "max_1min": max(one)} if one else None


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--ours", nargs=2, metavar=("ARTIFACT", "BROWSER_JSON"), required=True)
    p.add_argument("--peer", nargs=2, metavar=("ARTIFACT", "BROWSER_JSON"), required=True)
    p.add_argument("--params", type=int, required=True, help="the float model's parameter count (fp16 = 2 bytes each)")
    p.add_argument("--loadavg", help="/proc/loadavg samples taken during the run (run.sh)")
    p.add_argument("--out", required=True)
    p.add_argument("--markdown", required=True)
    p.add_argument("manifests", nargs="+")
    args = p.parse_args()
    browser = {k: json.loads(Path(f).read_text()) for k, f in (("ours", args.ours[1]), ("peer", args.peer[1]))}
    page = {k: {r["id"]: r for r in b["results"]} for k, b in browser.items()}
    engine = open_engine(args.ours[0], threads=2)
    language = "en" if engine.transcriber.tokenizer.multilingual else None  # the page's language too
    rows = []
    for clip in read_manifests(args.manifests):
        audio = load_audio(clip.audio)
        t = time.perf_counter()
        text = engine.transcribe(audio, language, 1, 224).text.strip()
        seconds = time.perf_counter() - t
        ours, peer = page["ours"][clip.id], page["peer"][clip.id]
        s = {k: score(clip.text, v, "en") for k, v in (("python", text), ("ours", ours["text"]),
                                                       ("peer", peer["text"]))}
        rows.append({"id": clip.id, "reference": clip.text, "python": text, "browser": ours["text"],
                     "peer": peer["text"], "equal": text == ours["text"],
                     "equal_normalised": normalize(text, "en") == normalize(ours["text"], "en"),
                     "ref_words": s["ours"].ref_words, "errors": {k: v.errors for k, v in s.items()},
                     "audio_s": ours["audio_s"], "rtf_python": seconds / ours["audio_s"],
                     "rtf_browser": ours["ms"] / 1000 / ours["audio_s"],
                     "rtf_peer": peer["ms"] / 1000 / peer["audio_s"]})
    refs = [r["ref_words"] for r in rows]
    errs = {k: [r["errors"][k] for r in rows] for k in ("python", "ours", "peer")}
    wer = {k: sum(v) / sum(refs) for k, v in errs.items()}
    size = {k: graph_bytes(a) for k, a in (("ours", args.ours[0]), ("peer", args.peer[0]))}
    fp16 = 2 * args.params
    report = {
        "cpu": describe_cpu(), "loadavg": loadavg(args.loadavg),
        "browser": {k: {f: v for f, v in b.items() if f not in ("results", "resources")} for k, b in browser.items()},
        "artifacts": {"ours": args.ours[0], "peer": args.peer[0]},
        "clips": len(rows), "equal": sum(r["equal"] for r in rows),
        "equal_normalised": sum(r["equal_normalised"] for r in rows),
        "differ": [{k: r[k] for k in ("id", "python", "browser", "equal_normalised")}
                   | {"errors_python": r["errors"]["python"], "errors_browser": r["errors"]["ours"]}
                   for r in rows if not r["equal"]],
        "wer": {"python_ours": wer["python"], "browser_ours": wer["ours"], "browser_peer": wer["peer"]},
        "wer_ci95": {"browser_ours": bootstrap_ci(errs["ours"], refs), "browser_peer": bootstrap_ci(errs["peer"], refs),
                     "peer_minus_ours": bootstrap_ci(errs["ours"], refs, errs["peer"])},
        "median_rtf": {"browser_ours": statistics.median(r["rtf_browser"] for r in rows),
                       "browser_peer": statistics.median(r["rtf_peer"] for r in rows),
                       "python_ours": statistics.median(r["rtf_python"] for r in rows)},
        "graph_bytes": size, "fp16_bytes": fp16,
        "page_bytes": {k: page_bytes(b) for k, b in browser.items()},
        "rows": rows,
    }
    assert abs(corpus_wer([score(r["reference"], r["browser"], "en") for r in rows]) - wer["ours"]) < 1e-12
    # like for like: an fp16 model's page would download the same tokenizer and configs beside its graphs
    report["size_vs_fp16"] = {k: {"graphs": size[k] / fp16, "model_files_downloaded":
                                  report["page_bytes"][k]["model_files"] / fp16,
                                  "model_files_vs_fp16_with_same_support_files":
                                  report["page_bytes"][k]["model_files"]
                                  / (fp16 + report["page_bytes"][k]["model_files"] - size[k])} for k in size}
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    Path(args.markdown).write_text(markdown(report) + "\n")
    print(markdown(report))
    return 0


def markdown(r: dict) -> str:
    b, la, ci = r["browser"]["ours"], r["loadavg"], r["wer_ci95"]
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    md = [f"# {Path(r['artifacts']['ours']).parent.name}: browser campaign ({r['clips']} clips, vitw8 + dev)", "",
          f"CPU: {r['cpu']}; load average (1 min) during the run: median {la['median_1min']:.1f}, max "
          f"{la['max_1min']:.1f} ({la['samples']} samples): a shared machine, timings are noisy" if la else
          f"CPU: {r['cpu']} (shared machine)", "",
          f"Browser: {b['userAgent']}; {b['backend']}; cross-origin isolated: {b['crossOriginIsolated']}", "",
          f"- our int4 in the browser vs our Python runner on the same graphs: **{r['equal']} / {r['clips']}** "
          f"transcripts equal ({r['equal_normalised']} equal after normalisation)",
          f"- WER in the browser: ours {pct(r['wer']['browser_ours'])} (95% CI {pct(ci['browser_ours'][0])} to "
          f"{pct(ci['browser_ours'][1])}), transformers.js q4 (onnxruntime RTN) {pct(r['wer']['browser_peer'])} "
          f"({pct(ci['browser_peer'][0])} to {pct(ci['browser_peer'][1])}); paired difference peer - ours: "
          f"{pct(r['wer']['browser_peer'] - r['wer']['browser_ours'])} (95% CI {pct(ci['peer_minus_ours'][0])} to "
          f"{pct(ci['peer_minus_ours'][1])}); our Python runner {pct(r['wer']['python_ours'])}",
          f"- median RTF: browser ours {r['median_rtf']['browser_ours']:.3f}, browser q4 peer "
          f"{r['median_rtf']['browser_peer']:.3f}, Python runner ours {r['median_rtf']['python_ours']:.3f} "
          "(2 threads each)",
          f"- model load in the page: ours {r['browser']['ours']['loadMs'] / 1000:.1f} s, peer "
          f"{r['browser']['peer']['loadMs'] / 1000:.1f} s"]
    for k, name in (("ours", "ours"), ("peer", "q4 peer")):
        pb = r["page_bytes"][k]
        md.append(f"- download, {name}: page {pb['total'] / 1e6:.1f} MB = model files {pb['model_files'] / 1e6:.1f} MB "
                  f"({r['size_vs_fp16'][k]['model_files_downloaded']:.3f} x the fp16 model's "
                  f"{r['fp16_bytes'] / 1e6:.1f} MB) + JavaScript/WebAssembly {pb['code'] / 1e6:.1f} MB; graphs alone "
                  f"{r['graph_bytes'][k] / 1e6:.1f} MB ({r['size_vs_fp16'][k]['graphs']:.3f} x); model files against "
                  "an fp16 model's graphs with the same tokenizer and configs: "
                  f"{r['size_vs_fp16'][k]['model_files_vs_fp16_with_same_support_files']:.3f} x")
    md += ["", "Transcripts that differ (browser vs Python runner, ours):", "",
           "| clip | Python | browser | equal once normalised | errors Python / browser |", "|---|---|---|---|---|"]
    md += [f"| {d['id']} | {d['python']} | {d['browser']} | {d['equal_normalised']} | "
           f"{d['errors_python']} / {d['errors_browser']} |" for d in r["differ"]]
    return "\n".join(md)


if __name__ == "__main__":
    raise SystemExit(main())
