"""The bench report: the markdown table a person reads, and a plot.

The first run is the baseline: every other run's corpus WER delta is shown with a paired
bootstrap interval over clips and in words, because a delta of one word on a small set is noise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .metrics import bootstrap_ci


def _pct(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f}"


def _paired(base: dict, run: dict) -> tuple[list[int], list[int], list[int]]:
    """Per-clip errors of two runs over the clips both scored, with reference word counts."""
    b = {c["id"]: c for c in base["clips"] if c.get("hyp") is not None}
    pairs = [(b[c["id"]], c) for c in run["clips"] if c.get("hyp") is not None and c["id"] in b]
    return [p[0]["errors"] for p in pairs], [p[1]["errors"] for p in pairs], [p[0]["ref_words"] for p in pairs]


def delta_cell(base: dict, run: dict) -> str:
    if run is base:
        return "baseline"
    ea, eb, refs = _paired(base, run)
    words = sum(refs)
    if not words:
        return "n/a"
    delta = (sum(eb) - sum(ea)) / words
    lo, hi = bootstrap_ci(ea, refs, eb)
    return f"{100 * delta:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] ({sum(eb) - sum(ea):+d} w)"


def clip_failures(clip: dict) -> set[str]:
    """How a scored clip failed: empty output, a stopped loop, the length limit."""
    if clip.get("hyp") is None:
        return set()
    stops = set(clip.get("stops") or []) & {"loop", "max_length"}
    return stops | ({"empty"} if not clip["hyp"].strip() else set())


def new_failures(base: dict, run: dict) -> list[str]:
    """Clips where ``run`` fails in a way the first row does not on the same clip."""
    b = {c["id"]: clip_failures(c) for c in base["clips"]}
    return [f"{c['id']} ({', '.join(sorted(f - b.get(c['id'], set())))})" for c in run["clips"]
            if (f := clip_failures(c)) - b.get(c["id"], set())]


def identical_transcripts(base: dict, run: dict) -> tuple[int, int]:
    b = {c["id"]: c.get("hyp") for c in base["clips"]}
    same = [c["hyp"] == b.get(c["id"]) for c in run["clips"] if c.get("hyp") is not None]
    return sum(same), len(same)


def to_markdown(report: dict, command: str | None = None, max_clip_rows: int = 40) -> str:
    s = report["settings"]
    lines = []
    if command:
        lines += ["```", command, "```", ""]
    if s.get("partial"):
        lines += [f"> **PARTIAL REPORT** ({s['partial']}): the runs below are complete; the others are missing.", ""]
    failed = [r for r in report["runs"] if "error" in r]
    lines += [f"> **FAILED**: `{r['spec']}`: {r['error']} ({r['clips_done']} clips transcribed before)" for r in failed]
    lines += [""] if failed else []
    runs = [r for r in report["runs"] if "error" not in r]
    if not runs:
        return "\n".join(lines + ["No model finished a run."]) + "\n"
    base = runs[0]
    for w in report.get("warnings", []):
        lines += [f"> **WARNING**: {w}; its figures are not a fair evaluation.", ""]
    jobs = s.get("jobs", 1)
    timing = (f"{jobs} models ran at once: RTF and memory shared the CPU, compare them only within this table"
              if jobs > 1 else f"repeat {s['repeat']} (median RTF of interleaved runs)")
    lines += [f"{s['clips']} clips, beam {s['beam']}, {s['threads']} threads, max {s['max_new_tokens']} new tokens, "
              f"{timing}. WER in %; delta vs the first row with a "
              "95% paired bootstrap interval over clips and the difference in words. bits/w: mean bits per "
              "quantized weight, scales and zero points included; enc %: share of the transcription time in log-mels + "
              "encoder (the rest is decoding).", ""]
    lines += ["| model | engine | size MB | bits/w | WER | Δ WER vs first [95% CI] (words) | mean agreement "
              "| same text as first | RTF | enc % | peak RSS MB | load s | empty / loop / max-len / bad input "
              "| new failures |",
              "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in runs:
        f = r["failures"]
        same, n = identical_transcripts(base, r)
        lines.append(
            f"| `{r['spec']}` | {r['engine']} | {r['size_bytes'] / 1e6:.1f} | {_bits(r.get('bits_per_weight'))} "
            f"| {_pct(r['wer'])} | {delta_cell(base, r)} "
            f"| {_pct(r['agreement'])} | {same}/{n} | {r['rtf']:.3f} | {_share(r.get('encoder_share'))} "
            f"| {r['peak_rss_mb']:.0f} | {r['load_s']:.1f} "
            f"| {f['empty']} / {f['loop']} / {f['max_length']} / {_unscored(f)} "
            f"| {'—' if r is base else len(new_failures(base, r))} |")
    news = [(r["spec"], new_failures(base, r)) for r in runs[1:]]
    if any(n for _, n in news):
        lines += ["", "New failures: clips where a model fails (empty / loop / max-len) and the first row does not:",
                  ""]
        lines += [f"- `{spec}`: {', '.join(n)}" for spec, n in news if n]
    cats = sorted({c for r in runs for c in r["per_category"]})
    if len(cats) > 1:
        lines += ["", "WER % per category (reference words):", "",
                  "| category | words | " + " | ".join(f"`{r['spec']}`" for r in runs) + " |",
                  "|---|---:|" + "---:|" * len(runs)]
        for cat in cats:
            words = base["per_category"].get(cat, {}).get("ref_words", 0)
            cells = [_pct(r["per_category"].get(cat, {}).get("wer", float("nan"))) for r in runs]
            lines.append(f"| {cat} | {words} | " + " | ".join(cells) + " |")
    if len(base["clips"]) <= max_clip_rows:
        lines += ["", "Transcripts (errors / reference words; `=` same text as the first row's model):", ""]
        lines += ["| clip | reference | " + " | ".join(f"`{r['spec']}`" for r in runs) + " |",
                  "|---|---|" + "---|" * len(runs)]
        for i, c in enumerate(base["clips"]):
            cells = [_clip_cell(r["clips"][i], base["clips"][i] if r is not base else None) for r in runs]
            lines.append(f"| {c['id']} | {c['ref']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _unscored(failures: dict) -> int:
    """Clips without a transcript: unreadable, silent, too short, or the model failed on them."""
    return sum(failures.get(k, 0) for k in ("bad_input", "silence", "too_short", "model_error"))


def _share(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}"


def _bits(b: float | None) -> str:
    return "—" if b is None else f"{b:.2f}"


def _clip_cell(clip: dict, base_clip: dict | None) -> str:
    if clip.get("hyp") is None:
        return f"**{clip.get('error_kind', 'bad_input').replace('_', ' ')}**: {clip['error']}"
    flags = "".join(f" **{s}**" for s in clip["stops"] if s != "eot")
    score = f"({clip['errors']}/{clip['ref_words']})"
    if base_clip is not None and clip["hyp"] == base_clip.get("hyp"):
        return f"= {score}{flags}"
    text = clip["hyp"] if len(clip["hyp"]) < 160 else clip["hyp"][:157] + "..."
    return f"{text.replace('|', '/')} {score}{flags}"


def plot(report: dict, path: str) -> None:
    """WER per category per run, as grouped bars (matplotlib, optional)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in report["runs"] if "error" not in r]
    cats = sorted({c for r in runs for c in r["per_category"]})
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(cats) * max(1, len(runs) / 3)), 4))
    for i, r in enumerate(runs):
        ys = [100 * r["per_category"].get(c, {}).get("wer", float("nan")) for c in cats]
        ax.bar([j + i * width for j in range(len(cats))], ys, width, label=r["spec"])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cats))], cats, rotation=30, ha="right")
    ax.set_ylabel("WER %")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_reports(report: dict, command: str, json_path=None, markdown_path=None, plot_path=None) -> str:
    """The markdown report (returned), and the JSON report, the markdown and the plot where paths are given."""
    md = to_markdown(report, command)
    for path, text in ((json_path, json.dumps(report, indent=1, ensure_ascii=False)), (markdown_path, md)):
        if path:
            # Written aside and renamed: an interrupt mid-write leaves the previous (partial) report whole.
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text + ("\n" if not text.endswith("\n") else ""), encoding="utf-8")
            tmp.replace(path)
    if plot_path:
        plot(report, plot_path)
    return md
