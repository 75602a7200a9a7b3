"""The browser campaign's report for one model (run by run.sh): our int4 export and transformers.js'
own q4 (the round-to-nearest peer), both transcribed in the same page (web/driver.mjs's JSON), and
our Python onnxruntime runner over our export's very graphs.

- per clip, our browser transcript vs the Python runner's: how many are equal, and those that
  differ (with whether they still agree once normalised, and each one's errors against the reference);
  how each 30 s window ended on both sides (end token, the loop guard, the 224-token budget)
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
    res = browser.get("resources", [])
    unique = {r["name"]: r["bytes"] for r in res}  # the page asks for some files twice (tokenizer.json, config.json)
    model = sum(b for n, b in unique.items() if "/model/" in n)
    return {"total": browser["downloadedBytes"], "unique": sum(unique.values()), "model_files": model,
            "code": sum(unique.values()) - model, "requests": len(res), "unique_requests": len(unique)}


def why(python: str, browser: str, stops_python: list, stops_browser: list | None) -> str:
    """Why the browser's transcript differs from the Python runner's (both our graphs)."""
    a, b = normalize(python, "en"), normalize(browser, "en")
    if a == b:
        return "case or punctuation only"
    if len(b) > len(a) and b[:len(a)] == a and "loop" in stops_python and "loop" not in (stops_browser or []):
        return ("the Python runner's loop guard stopped a repetition that the page "
                f"({'no loop guard' if stops_browser is None else 'stops: ' + '/'.join(stops_browser)}) ran on")
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return (f"the tokens part at word {first + 1} of {len(a)}: a near tie decided otherwise by onnxruntime-web's "
            "WebAssembly kernels than by native onnxruntime (float sums in another order)")


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
    p.add_argument("--reuse", help="a previous report of the same clips: its Python transcripts and times (the "
                   "runner still runs where the report lacks its stops, and must give the same transcripts)")
    p.add_argument("manifests", nargs="+")
    args = p.parse_args()
    # A browser JSON that is "-", or partial (a cut run), is completed by the Python runner on the
    # same graphs for the peer; ours is reported on the clips its browser run has.
    browser = {k: json.loads(Path(f).read_text()) if f != "-" else {"results": []}
               for k, f in (("ours", args.ours[1]), ("peer", args.peer[1]))}
    page = {k: {r["id"]: r for r in b["results"]} for k, b in browser.items()}
    engine = open_engine(args.ours[0], threads=2)
    peer_engine = None
    language = "en" if engine.transcriber.tokenizer.multilingual else None  # the page's language too
    rows = []
    before = {r["id"]: r for r in json.loads(Path(args.reuse).read_text())["rows"]} if args.reuse else {}
    for clip in read_manifests(args.manifests):
        if clip.id not in page["ours"]:
            continue
        audio = load_audio(clip.audio)
        if clip.id in before and "stops_python" in before[clip.id]:
            was = before[clip.id]
            text, stops = was["python"], was["stops_python"]
            seconds = was["rtf_python"] * page["ours"][clip.id]["audio_s"]
        else:
            t = time.perf_counter()
            out = engine.transcribe(audio, language, 1, 224)
            seconds = time.perf_counter() - t
            text, stops = out.text.strip(), out.stops
            if clip.id in before:  # an older report without the stops: its transcript and time stand
                assert before[clip.id]["python"] == text, f"{clip.id}: the Python runner's transcript changed"
                seconds = before[clip.id]["rtf_python"] * page["ours"][clip.id]["audio_s"]
        ours, peer = page["ours"][clip.id], page["peer"].get(clip.id)
        if peer is None:
            peer_engine = peer_engine or open_engine(args.peer[0], threads=2)
            t = time.perf_counter()
            out = peer_engine.transcribe(audio, language, 1, 224)
            peer = {"text": out.text.strip(), "stops": out.stops, "audio_s": ours["audio_s"], "source": "python"}
            peer["ms"] = 1000 * (time.perf_counter() - t)
        s = {k: score(clip.text, v, clip.lang or "en") for k, v in (("python", text), ("ours", ours["text"]),
                                                       ("peer", peer["text"]))}
        rows.append({"id": clip.id, "reference": clip.text, "python": text, "browser": ours["text"],
                     "peer": peer["text"], "equal": text == ours["text"], "stops_python": stops,
                     "stops_browser": ours.get("stops"), "stops_peer": peer.get("stops"),
                     "equal_normalised": normalize(text, "en") == normalize(ours["text"], "en"), "lang": clip.lang,
                     "ref_words": s["ours"].ref_words, "errors": {k: v.errors for k, v in s.items()},
                     "audio_s": ours["audio_s"], "rtf_python": seconds / ours["audio_s"],
                     "rtf_browser": ours["ms"] / 1000 / ours["audio_s"],
                     "rtf_peer": peer["ms"] / 1000 / peer["audio_s"], "peer_source": peer.get("source", "browser")})
    # WER over the English clips: the page asks for English (the Chinese dev clips come out as English
    # words, and CER would put characters beside words in one figure); equality counts every clip.
    scored = [r for r in rows if (r["lang"] or "en") == "en"]
    refs = [r["ref_words"] for r in scored]
    errs = {k: [r["errors"][k] for r in scored] for k in ("python", "ours", "peer")}
    wer = {k: sum(v) / sum(refs) for k, v in errs.items()}
    size = {k: graph_bytes(a) for k, a in (("ours", args.ours[0]), ("peer", args.peer[0]))}
    fp16 = 2 * args.params
    report = {
        "cpu": describe_cpu(), "loadavg": loadavg(args.loadavg),
        "browser": {k: {f: v for f, v in b.items() if f not in ("results", "resources")} for k, b in browser.items()},
        "artifacts": {"ours": args.ours[0], "peer": args.peer[0]},
        "clips": len(rows), "equal": sum(r["equal"] for r in rows),
        "equal_normalised": sum(r["equal_normalised"] for r in rows),
        "stops_equal": sum(r["stops_browser"] == r["stops_python"] for r in rows),
        # windows that ended at the loop guard or the token budget, per engine (None: the JSON has no stops)
        "stops": {k: {s: sum((r[f"stops_{k}"] or []).count(s) for r in rows) for s in ("loop", "max_length")}
                  if all(r[f"stops_{k}"] is not None for r in rows) else None for k in ("python", "browser", "peer")},
        "differ": [{k: r[k] for k in ("id", "python", "browser", "equal_normalised", "stops_python",
                                      "stops_browser")}
                   | {"why": why(r["python"], r["browser"], r["stops_python"], r["stops_browser"])}
                   | {"errors_python": r["errors"]["python"], "errors_browser": r["errors"]["ours"]}
                   for r in rows if not r["equal"]],
        "wer": {"python_ours": wer["python"], "browser_ours": wer["ours"], "browser_peer": wer["peer"]},
        "wer_ci95": {"browser_ours": bootstrap_ci(errs["ours"], refs), "browser_peer": bootstrap_ci(errs["peer"], refs),
                     "peer_minus_ours": bootstrap_ci(errs["ours"], refs, errs["peer"])},
        "peer_in_browser": sum(r["peer_source"] == "browser" for r in rows),
        "median_rtf": {"browser_ours": statistics.median(r["rtf_browser"] for r in rows),
                       "browser_peer": statistics.median([r["rtf_peer"] for r in rows if r["peer_source"] == "browser"]
                                                         or [float("nan")]),
                       "python_ours": statistics.median(r["rtf_python"] for r in rows)},
        "graph_bytes": size, "fp16_bytes": fp16,
        "page_bytes": {k: page_bytes(b) for k, b in browser.items() if "downloadedBytes" in b},
        "rows": rows,
    }
    report["wer_clips"] = len(scored)
    assert abs(corpus_wer([score(r["reference"], r["browser"], "en") for r in scored]) - wer["ours"]) < 1e-12
    # Secondary: without the clips where a transcript runs past 3x the reference's words (a loop to the
    # token limit): one such clip outweighs the rest of the corpus.
    keep = [i for i, r in enumerate(scored) if max(len(r[k].split()) for k in ("python", "browser", "peer"))
            <= 3 * max(r["ref_words"], 1)]
    sub = {k: [errs[k][i] for i in keep] for k in errs}
    sub_refs = [refs[i] for i in keep]
    report["without_runaway"] = {"clips": len(keep),
                                 "dropped": [scored[i]["id"] for i in range(len(scored)) if i not in keep],
                                 "wer_browser_ours": sum(sub["ours"]) / sum(sub_refs),
                                 "wer_browser_peer": sum(sub["peer"]) / sum(sub_refs),
                                 "peer_minus_ours_ci95": bootstrap_ci(sub["ours"], sub_refs, sub["peer"])}
    report["per_clip"] = {"ours_fewer_errors": sum(a < b for a, b in zip(errs["ours"], errs["peer"])),
                          "peer_fewer_errors": sum(a > b for a, b in zip(errs["ours"], errs["peer"])),
                          "tied": sum(a == b for a, b in zip(errs["ours"], errs["peer"]))}
    # like for like: an fp16 model's page would download the same tokenizer and configs beside its graphs
    report["size_vs_fp16"] = {k: {"graphs": size[k] / fp16, "model_files_downloaded":
                                  report["page_bytes"][k]["model_files"] / fp16,
                                  "model_files_vs_fp16_with_same_support_files":
                                  report["page_bytes"][k]["model_files"]
                                  / (fp16 + report["page_bytes"][k]["model_files"] - size[k])}
                              for k in report["page_bytes"]}
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    Path(args.markdown).write_text(markdown(report) + "\n")
    print(markdown(report))
    return 0


def markdown(r: dict) -> str:
    b, la, ci, wr = r["browser"]["ours"], r["loadavg"], r["wer_ci95"], r["without_runaway"]
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    md = [f"# {Path(r['artifacts']['ours']).parent.name}: browser campaign ({r['clips']} clips, vitw8 + dev)", "",
          f"CPU: {r['cpu']}; load average (1 min) during the run: median {la['median_1min']:.1f}, max "
          f"{la['max_1min']:.1f} ({la['samples']} samples): a shared machine, timings are noisy" if la else
          f"CPU: {r['cpu']} (shared machine)", "",
          f"Browser: {b['userAgent']}; {b['backend']}; cross-origin isolated: {b['crossOriginIsolated']}", "",
          f"- our int4 in the browser vs our Python runner on the same graphs: **{r['equal']} / {r['clips']}** "
          f"transcripts equal ({r['equal_normalised']} equal after normalisation); how each window ended "
          f"(eot / loop guard / token budget) equal on {r['stops_equal']} / {r['clips']}; windows stopped at a loop "
          f"or the budget: " + ", ".join(f"{k} {v['loop']} loop / {v['max_length']} budget" for k, v in
                                         r["stops"].items() if v) if r.get("stops") else
          f"transcripts equal ({r['equal_normalised']} equal after normalisation)",
          f"- peer transcripts from the browser on {r['peer_in_browser']} of {r['clips']} clips (the rest: our "
          "Python runner on the peer's graphs)",
          f"- WER in the browser ({r['wer_clips']} English clips): ours {pct(r['wer']['browser_ours'])} "
          f"(95% CI {pct(ci['browser_ours'][0])} to "
          f"{pct(ci['browser_ours'][1])}), transformers.js q4 (onnxruntime RTN) {pct(r['wer']['browser_peer'])} "
          f"({pct(ci['browser_peer'][0])} to {pct(ci['browser_peer'][1])}); paired difference peer - ours: "
          f"{pct(r['wer']['browser_peer'] - r['wer']['browser_ours'])} (95% CI {pct(ci['peer_minus_ours'][0])} to "
          f"{pct(ci['peer_minus_ours'][1])}); our Python runner {pct(r['wer']['python_ours'])}",
          (f"- without the {len(wr['dropped'])} clips where a transcript runs past 3x the reference "
           f"(loops: {', '.join(wr['dropped'])}): ours {pct(wr['wer_browser_ours'])}, "
           f"peer {pct(wr['wer_browser_peer'])}, peer - ours 95% CI "
           f"{pct(wr['peer_minus_ours_ci95'][0])} to {pct(wr['peer_minus_ours_ci95'][1])}; " if wr["dropped"] else
           "- no transcript runs past 3x the reference's words; ")
          + f"per clip: ours fewer errors on {r['per_clip']['ours_fewer_errors']}, the peer on "
          f"{r['per_clip']['peer_fewer_errors']}, tied on {r['per_clip']['tied']}",
          f"- median RTF: browser ours {r['median_rtf']['browser_ours']:.3f}, browser q4 peer "
          f"{r['median_rtf']['browser_peer']:.3f}, Python runner ours {r['median_rtf']['python_ours']:.3f} "
          "(2 threads each)",
          "- model load in the page: " + ", ".join(f"{k} {b['loadMs'] / 1000:.1f} s" for k, b in r["browser"].items()
                                                    if "loadMs" in b)]
    for k, name in (("ours", "ours"), ("peer", "q4 peer")):
        if k not in r["page_bytes"]:
            continue
        pb = r["page_bytes"][k]
        md.append(f"- download, {name}: {pb['unique'] / 1e6:.1f} MB in {pb['unique_requests']} files (the page's "
                  f"own count, repeated requests included: {pb['total'] / 1e6:.1f} MB) = model files "
                  f"{pb['model_files'] / 1e6:.1f} MB "
                  f"({r['size_vs_fp16'][k]['model_files_downloaded']:.3f} x the fp16 model's "
                  f"{r['fp16_bytes'] / 1e6:.1f} MB) + JavaScript/WebAssembly {pb['code'] / 1e6:.1f} MB; graphs alone "
                  f"{r['graph_bytes'][k] / 1e6:.1f} MB ({r['size_vs_fp16'][k]['graphs']:.3f} x); model files against "
                  "an fp16 model's graphs with the same tokenizer and configs: "
                  f"{r['size_vs_fp16'][k]['model_files_vs_fp16_with_same_support_files']:.3f} x")
    md += ["", "Transcripts that differ (browser vs Python runner, ours):", "",
           "| clip | Python | browser | errors Python / browser | stops Python / browser | why |",
           "|---|---|---|---|---|---|"]
    cut = lambda t: t if len(t) < 160 else t[:150] + f" ... ({len(t.split())} words)"  # noqa: E731
    md += [f"| {d['id']} | {cut(d['python'])} | {cut(d['browser'])} | {d['errors_python']} / {d['errors_browser']} | "
           f"{'/'.join(d.get('stops_python') or ['?'])} / {'/'.join(d.get('stops_browser') or ['?'])} | {d['why']} |"
           for d in r["differ"]]
    return "\n".join(md)


if __name__ == "__main__":
    raise SystemExit(main())
