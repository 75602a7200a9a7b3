"""The bench report: the markdown table a person reads, and two figures.

The first run is the baseline: every other run's corpus WER delta is shown with a paired
bootstrap interval over clips and in words, because a delta of one word on a small set is noise.
Rows carry short labels (``fp32``, ``int4 (cpu)``, ``faster-whisper int8``: ``report["labels"]``
where the caller named them, else derived from the spec); a legend table gives each label's full
spec. The figures: WER per category with intervals, and the trade-off (WER with its interval
against size on disk and against RTF).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import AsrQuantError
from .metrics import bootstrap_ci
from .text import normalize


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
    """How a scored clip failed: no word in the output (empty or only punctuation), a stopped loop,
    the length limit."""
    if clip.get("hyp") is None:
        return set()
    stops = set(clip.get("stops") or []) & {"loop", "max_length"}
    return stops | (set() if normalize(clip["hyp"], clip.get("lang") or "en") else {"empty"})


def new_failures(base: dict, run: dict) -> list[str]:
    """Clips where ``run`` fails in a way the first row does not on the same clip."""
    b = {c["id"]: clip_failures(c) for c in base["clips"]}
    return [f"{c['id']} ({', '.join(sorted(f - b.get(c['id'], set())))})" for c in run["clips"]
            if (f := clip_failures(c)) - b.get(c["id"], set())]


def identical_transcripts(base: dict, run: dict) -> tuple[int, int]:
    b = {c["id"]: c.get("hyp") for c in base["clips"]}
    same = [c["hyp"] == b.get(c["id"]) for c in run["clips"] if c.get("hyp") is not None]
    return sum(same), len(same)


def short_label(spec: str) -> str:
    """``faster-whisper:whisper-base:int8`` -> ``faster-whisper int8``; ``DIR@VARIANT`` or
    ``MODEL@RECIPE`` -> the variant or recipe; a path -> its last part; a registry name -> ``fp32``."""
    if spec.startswith("faster-whisper:"):
        return "faster-whisper " + spec.rsplit(":", 1)[-1]
    if spec.startswith("transformers:"):
        return "transformers fp32"
    if "@" in spec:
        return spec.rsplit("@", 1)[-1]
    if "/" in spec or Path(spec).exists():
        return Path(spec.rstrip("/")).name
    return "fp32"


def labels(report: dict) -> list[str]:
    """One short, distinct label per run (the caller's, else :func:`short_label`, else the spec)."""
    given = report.get("labels") or {}
    out = [given.get(r["spec"]) or short_label(r["spec"]) for r in report["runs"]]
    return [lab if out.count(lab) == 1 else r["spec"] for lab, r in zip(out, report["runs"])]


def wer_interval(run: dict, clips: list[dict] | None = None) -> tuple[float, float]:
    """95% bootstrap interval over clips of a run's corpus WER."""
    scored = [c for c in (run["clips"] if clips is None else clips) if c.get("hyp") is not None]
    if not scored:
        return float("nan"), float("nan")
    return bootstrap_ci([c["errors"] for c in scored], [c["ref_words"] for c in scored])


def wer_cell(run: dict) -> str:
    lo, hi = wer_interval(run)
    return f"{_pct(run['wer'])} [{_pct(lo)}, {_pct(hi)}]"


def legend(report: dict) -> list[str]:
    lines = ["| label | spec | engine | size MB | bits/w |", "|---|---|---|---:|---:|"]
    for lab, r in zip(labels(report), report["runs"]):
        size = "—" if r.get("size_bytes") is None else f"{r['size_bytes'] / 1e6:.1f}"  # a model that failed
        engine = r.get("engine") or "—"
        lines.append(f"| {lab} | `{r['spec']}` | {engine} | {size} | {_bits(r.get('bits_per_weight'))} |")
    return lines


def cpu_line(settings: dict) -> list[str]:
    return [f"CPU: {settings['cpu']}.", ""] if settings.get("cpu") else []


def to_markdown(report: dict, command: str | None = None, max_clip_rows: int = 40) -> str:
    s = report["settings"]
    names = dict(zip((r["spec"] for r in report["runs"]), labels(report)))
    lines = []
    if command:
        lines += ["```", command, "```", ""]
    lines += cpu_line(s)
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
    lines += ["| model | engine | size MB | bits/w | WER [95% CI] | Δ WER vs first [95% CI] (words) "
              "| mean agreement | same text as first | RTF | enc % | peak RSS MB | load s "
              "| no words / loop / max-len / bad input | new failures |",
              "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in runs:
        f = r["failures"]
        same, n = identical_transcripts(base, r)
        lines.append(
            f"| {names[r['spec']]} | {r['engine']} | {r['size_bytes'] / 1e6:.1f} | {_bits(r.get('bits_per_weight'))} "
            f"| {wer_cell(r)} | {delta_cell(base, r)} "
            f"| {_pct(r['agreement'])} | {same}/{n} | {r['rtf']:.3f} | {_share(r.get('encoder_share'))} "
            f"| {r['peak_rss_mb']:.0f} | {r['load_s']:.1f} "
            f"| {f['empty']} / {f['loop']} / {f['max_length']} / {_unscored(f)} "
            f"| {'—' if r is base else len(new_failures(base, r))} |")
    news = [(r["spec"], new_failures(base, r)) for r in runs[1:]]
    if any(n for _, n in news):
        lines += ["", "New failures: clips where a model fails (no words / loop / max-len) and the first row does not:",
                  ""]
        lines += [f"- {names[spec]}: {', '.join(n)}" for spec, n in news if n]
    cats = sorted({c for r in runs for c in r["per_category"]})
    if len(cats) > 1:
        lines += ["", "WER % per category (reference words):", "",
                  "| category | words | " + " | ".join(names[r["spec"]] for r in runs) + " |",
                  "|---|---:|" + "---:|" * len(runs)]
        for cat in cats:
            words = base["per_category"].get(cat, {}).get("ref_words", 0)
            cells = [_pct(r["per_category"].get(cat, {}).get("wer", float("nan"))) for r in runs]
            lines.append(f"| {cat} | {words} | " + " | ".join(cells) + " |")
    if len(base["clips"]) <= max_clip_rows:
        lines += ["", "Transcripts (errors / reference words; `=` same text as the first row's model):", ""]
        lines += ["| clip | reference | " + " | ".join(names[r["spec"]] for r in runs) + " |",
                  "|---|---|" + "---|" * len(runs)]
        for i, c in enumerate(base["clips"]):
            cells = [_clip_cell(r["clips"][i], base["clips"][i] if r is not base else None) for r in runs]
            lines.append(f"| {c['id']} | {c['ref']} | " + " | ".join(cells) + " |")
    lines += ["", "Legend:", ""] + legend(report)
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


def _category_clips(run: dict, cat: str) -> list[dict]:
    return [c for c in run["clips"] if c.get("category") == cat]


def plot(report: dict, path: str) -> None:
    """WER per category per run, as grouped bars with 95% bootstrap intervals (matplotlib, optional)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = dict(zip((r["spec"] for r in report["runs"]), labels(report)))
    runs = [r for r in report["runs"] if "error" not in r]  # a failed model has no figures to draw
    if not runs:
        return
    cats = sorted({c for r in runs for c in r["per_category"]})
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(cats) * max(1, len(runs) / 3)), 4))
    for i, r in enumerate(runs):
        lab = names[r["spec"]]
        ys = [100 * r["per_category"].get(c, {}).get("wer", float("nan")) for c in cats]
        cis = [wer_interval(r, _category_clips(r, c)) for c in cats]
        err = [[max(0.0, y - 100 * lo) for y, (lo, _) in zip(ys, cis)],
               [max(0.0, 100 * hi - y) for y, (_, hi) in zip(ys, cis)]]
        ax.bar([j + i * width for j in range(len(cats))], ys, width, label=lab, yerr=err, capsize=2,
               error_kw={"elinewidth": 0.8})
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cats))], cats, rotation=30, ha="right")
    ax.set_ylabel("WER % (95% bootstrap interval)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_tradeoff(report: dict, path: str) -> None:
    """The choice a user makes: corpus WER (with its 95% interval) against size on disk and against RTF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for lab, r in zip(labels(report), report["runs"]):
        if "error" in r:
            continue  # a failed model has no figures to draw
        lo, hi = wer_interval(r)
        y = 100 * r["wer"]
        err = [[max(0.0, y - 100 * lo)], [max(0.0, 100 * hi - y)]]
        for ax, x in zip(axes, (r["size_bytes"] / 1e6, r["rtf"])):
            ax.errorbar([x], [y], yerr=err, fmt="o", capsize=3, label=lab)
            ax.annotate(lab, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=7)
    axes[0].set_xlabel("size on disk, MB")
    axes[1].set_xlabel(f"RTF ({report['settings'].get('threads', '?')} threads; lower is faster)")
    axes[0].set_ylabel("WER % (95% bootstrap interval)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def tradeoff_path(plot_path) -> Path:
    p = Path(plot_path)
    return p.with_name(f"{p.stem}-tradeoff{p.suffix or '.png'}")


def card_section(report: dict, labels: list[str], command: str | None = None) -> str:
    """The model card's table: the float source and the artifact on the same clips, by the bench."""
    base, run = report["runs"]
    failed = [f"{r['spec']}: {r['error']}" for r in (base, run) if "error" in r]
    if failed:
        raise AsrQuantError(f"the evaluation for the model card failed: {'; '.join(failed)}")
    s = report["settings"]
    lines = ["## Measured against the float source", "",
             f"By `asrquant bench` on {s['clips']} clips of {', '.join(f'`{Path(d).name}`' for d in s['data'])} "
             f"(`{' '.join(Path(d).parent.name for d in s['data'])}`), beam {s['beam']}, {s['threads']} threads, "
             f"each model in its own process; WER in % with 95% bootstrap intervals over clips.", ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += cpu_line(s)
    lines += ["| model | size MB | WER [95% CI] | Δ WER [95% CI] (words) | new failures | RTF | peak RSS MB |",
              "|---|---:|---:|---|---:|---:|---:|"]
    for lab, r in zip(labels, (base, run)):
        lines.append(f"| {lab} | {r['size_bytes'] / 1e6:.1f} | {wer_cell(r)} | {delta_cell(base, r)} "
                     f"| {'—' if r is base else len(new_failures(base, r))} | {r['rtf']:.3f} "
                     f"| {r['peak_rss_mb']:.0f} |")
    cats = sorted({c for r in (base, run) for c in r["per_category"]})
    if len(cats) > 1:
        lines += ["", "Per condition:", "", "| condition | words | float WER | this WER | Δ [95% CI] (words) |",
                  "|---|---:|---:|---:|---|"]
        for cat in cats:
            b, r = ({"clips": _category_clips(x, cat)} for x in (base, run))
            ea, eb, refs = _paired(b, r)
            diff = sum(eb) - sum(ea)
            delta = delta_cell(b, r) if len(refs) > 1 else \
                f"{100 * diff / max(1, sum(refs)):+.1f} (one clip: no interval; {diff:+d} w)"
            lines.append(f"| {cat} | {base['per_category'].get(cat, {}).get('ref_words', 0)} "
                         f"| {_pct(base['per_category'].get(cat, {}).get('wer'))} "
                         f"| {_pct(run['per_category'].get(cat, {}).get('wer'))} | {delta} |")
    news = new_failures(base, run)
    lines += ["", f"New failures (the artifact fails, the float source does not): {', '.join(news) or 'none'}."]
    return "\n".join(lines)


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
        plot_tradeoff(report, tradeoff_path(plot_path))
    return md
