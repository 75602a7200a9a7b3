"""`asrquant bench`: every model spec on the same clips, each run in its own process.

A run's process loads the model (timed: load_s), transcribes one clip untimed to warm up, then
every clip timed (decode_s); its peak RSS is its own. The parent scores the transcripts and
writes the report. With --repeat N the specs run N times interleaved (A B C A B C ...) and the
report quotes the median RTF, so a noisy shared machine hurts every model alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from . import __version__
from .errors import AsrQuantError, AudioError
from .eval.manifest import Clip, read_manifests
from .families import is_quantized_dir

# ---- the worker: one spec, one process ---------------------------------------------------

def _emit(event: str, **fields) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def _peak_rss_mb(status: str = "/proc/self/status") -> float:
    """This process's own high-water mark of resident memory, in MB (2^20 bytes).

    ``VmHWM`` where /proc exists: ``getrusage``'s ``ru_maxrss`` survives ``exec`` on Linux, so a
    child forked from a big parent would report the parent's size. Elsewhere (macOS) ``ru_maxrss``,
    which is the process's own there (bytes on macOS, KiB on the BSDs).
    """
    try:
        with open(status, encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0


def run_worker(job: dict) -> int:
    from .audio import load_audio
    from .engines import open_engine

    t0 = time.perf_counter()
    try:
        engine = open_engine(job.get("open") or job["spec"], threads=job["threads"])
    except AsrQuantError as e:
        _emit("error", message=str(e))
        return 2
    _emit("loaded", load_s=time.perf_counter() - t0, engine=engine.engine, size_bytes=engine.size_bytes)
    decode_args = dict(beam_size=job["beam"], max_new_tokens=job["max_new_tokens"])

    def language(clip):
        return job["language"] or clip["lang"]

    audios = {}
    for clip in job["clips"]:
        try:
            audios[clip["id"]] = load_audio(clip["audio"])
        except AudioError as e:
            audios[clip["id"]] = e
    warm = next((c for c in job["clips"] if not isinstance(audios[c["id"]], Exception)), None)
    if warm is not None:
        engine.transcribe(audios[warm["id"]], language(warm), **decode_args)
    for clip in job["clips"]:
        audio = audios[clip["id"]]
        if isinstance(audio, Exception):
            _emit("clip", id=clip["id"], error=str(audio))
            continue
        t = time.perf_counter()
        out = engine.transcribe(audio, language(clip), **decode_args)
        _emit("clip", id=clip["id"], hyp=out.text, stops=out.stops, decode_s=time.perf_counter() - t,
              audio_s=len(audio) / 16000.0, encode_s=getattr(out, "encode_s", None))
    _emit("done", peak_rss_mb=_peak_rss_mb())
    return 0


# ---- the parent: spawn, score, report ----------------------------------------------------

def _run_spec(job: dict, on_clip) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(job["threads"]))
    proc = subprocess.Popen([sys.executable, "-m", "asrquant.bench"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    proc.stdin.write(json.dumps(job))
    proc.stdin.close()
    result = {"clips": {}}
    for line in proc.stdout:
        if not line.startswith("{"):
            continue  # a library printing to stdout
        ev = json.loads(line)
        kind = ev.pop("event")
        if kind == "error":
            proc.wait()
            raise AsrQuantError(f"{job['spec']}: {ev['message']}")
        if kind == "clip":
            result["clips"][ev["id"]] = ev
            on_clip()
        else:
            result.update(ev)
    if proc.wait() != 0 or "peak_rss_mb" not in result:
        raise AsrQuantError(f"{job['spec']}: the bench process failed (exit {proc.returncode}); see its output above")
    return result


def _score_run(spec: str, raw: list[dict], clips: list[Clip]) -> dict:
    from .eval.metrics import score

    first = raw[0]
    rows, failures = [], {"empty": 0, "loop": 0, "max_length": 0, "bad_input": 0}
    for clip in clips:
        ev = first["clips"][clip.id]
        row = {"id": clip.id, "category": clip.category, "lang": clip.lang, "ref": clip.text}
        if "error" in ev:
            failures["bad_input"] += 1
            rows.append({**row, "hyp": None, "error": ev["error"]})
            continue
        s = score(clip.text, ev["hyp"], clip.lang or "en")
        failures["empty"] += not ev["hyp"].strip()
        failures["loop"] += "loop" in ev["stops"]
        failures["max_length"] += "max_length" in ev["stops"]
        rows.append({**row, "hyp": ev["hyp"], "errors": s.errors, "ref_words": s.ref_words,
                     "agreement": s.agreement, "stops": ev["stops"], "audio_s": ev["audio_s"],
                     "decode_s": statistics.median(r["clips"][clip.id]["decode_s"] for r in raw)})
    scored = [r for r in rows if r.get("error") is None]
    rtfs = [sum(r["clips"][c["id"]]["decode_s"] for c in scored) / max(1e-9, sum(c["audio_s"] for c in scored))
            for r in raw]
    return {
        "spec": spec, "engine": first["engine"], "size_bytes": first["size_bytes"],
        **_aggregate(scored),
        "rtf": statistics.median(rtfs), "rtf_runs": rtfs, "encoder_share": _encoder_share(raw, scored),
        "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in raw),
        "load_s": statistics.median(r["load_s"] for r in raw),
        "failures": failures,
        "per_category": {cat: _aggregate([r for r in scored if r["category"] == cat])
                         for cat in sorted({r["category"] for r in scored})},
        "clips": rows,
    }


def _encoder_share(raw: list[dict], scored: list[dict]) -> float | None:
    """Median over repetitions of the fraction of transcription time spent in log-mels + encoder."""
    shares = []
    for r in raw:
        evs = [r["clips"][c["id"]] for c in scored]
        if not evs or any(e.get("encode_s") is None for e in evs):
            return None
        shares.append(sum(e["encode_s"] for e in evs) / max(1e-9, sum(e["decode_s"] for e in evs)))
    return statistics.median(shares)


def _aggregate(rows: list[dict]) -> dict:
    errors = sum(r["errors"] for r in rows)
    words = sum(r["ref_words"] for r in rows)
    return {
        "wer": errors / words if words else float("nan"),
        "agreement": statistics.fmean(r["agreement"] for r in rows) if rows else float("nan"),
        "n": len(rows),
        "ref_words": words,
    }


def _quantize_once(spec: str, calib: str | None, threads: int) -> str | None:
    """For ``MODEL@RECIPE``: quantize once (in its own process, cached by model, recipe and
    calibration set) and return the saved directory every repetition then loads."""
    from .cache import cache_dir
    from .quant.recipe import load_recipe
    from .quant.saved import SAVED_VERSION
    from .spec import parse

    parsed = parse(spec)
    if parsed.kind != "model" or parsed.recipe is None:
        return None  # a peer, an ONNX export (or one of its variants), a saved or plain model
    model, recipe_name = parsed.model, parsed.recipe
    recipe = load_recipe(recipe_name)
    if not recipe.needs_calibration:
        calib = None  # round to nearest needs no audio; calibrating would only fill the report's errors
    calib_stamp = None
    if calib:
        st = Path(calib).stat()
        calib_stamp = [str(Path(calib).resolve()), st.st_size, st.st_mtime_ns]
    key_parts = [model, recipe.to_dict(), calib_stamp, __version__, SAVED_VERSION]
    key = hashlib.sha256(json.dumps(key_parts).encode()).hexdigest()[:16]
    out = cache_dir() / "quantized" / f"{Path(model).name}--{recipe.name}-{key}"
    if not is_quantized_dir(out):
        cmd = [sys.executable, "-m", "asrquant.cli", "quantize", model, "--recipe", recipe_name, "--out", str(out),
               "--threads", str(threads)] + (["--calib", calib] if calib else [])
        if subprocess.run(cmd).returncode != 0:
            raise AsrQuantError(f"{spec}: quantization failed (command: {' '.join(cmd)})")
    return str(out)


def _calibration_record(run_dir: str) -> dict | None:
    """The calibration a quantized dir (quantization.json) or an ONNX variant (``DIR@VARIANT``,
    its manifest entry, as onnxruntime's GPTQ variants record it) was made with."""
    from .runtime.onnx_layout import DEFAULT_VARIANT
    from .spec import parse

    parsed = parse(run_dir)
    if parsed.kind == "onnx":
        directory, variant = Path(parsed.model), parsed.variant
        variants = json.loads((directory / "manifest.json").read_text()).get("variants", {})
        return variants.get(variant or DEFAULT_VARIANT, {}).get("calibration")
    qfile = Path(run_dir) / "quantization.json"
    return json.loads(qfile.read_text()).get("calibration") if qfile.is_file() else None


def calibration_overlap(run_dir: str, clips: list[Clip]) -> list[str]:
    """Evaluation clips that were also calibration clips of a quantized model (by id or audio)."""
    from .artifact import sha256_file

    cal = _calibration_record(run_dir)
    if not cal:
        return []
    ids, hashes = set(cal["ids"]), set(cal["audio_sha256"])
    return [c.id for c in clips if c.id in ids or (c.audio.is_file() and sha256_file(c.audio) in hashes)]


def bench(specs: list[str], data: list[str], language: str | None = None, beam: int = 1, threads: int = 2,
          limit: int | None = None, max_new_tokens: int = 224, repeat: int = 1, progress: bool = True,
          calib: str | None = None, jobs: int = 1) -> dict:
    """Every spec on the same clips, each in its own process; ``jobs`` > 1 runs that many at once
    (for accuracy tables: the timings of concurrent runs share the CPU and are not comparable)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if len(set(specs)) != len(specs):
        raise AsrQuantError("the same --model is given twice")
    clips = read_manifests(data)[:limit] if limit else read_manifests(data)
    job_clips = [{"id": c.id, "audio": str(c.audio), "lang": c.lang} for c in clips]
    # Quantize (MODEL@RECIPE) and run the specs ``jobs`` at a time: each in its own process.
    opened = dict(zip(specs, _parallel(lambda s: _quantize_once(s, calib, threads) or s, specs, jobs)))
    warnings = []
    for spec, path in opened.items():
        overlap = calibration_overlap(path, clips)
        if overlap:
            warnings.append(f"{spec}: {len(overlap)} evaluation clip(s) were calibration clips: "
                            f"{', '.join(overlap[:5])}{' ...' if len(overlap) > 5 else ''}")
    for w in warnings:
        Console(stderr=True).print(f"[bold red]WARNING: {w}; its figures are not a fair evaluation[/]")
    raw: dict[str, list[dict]] = {s: [] for s in specs}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=not progress, transient=False) as bar:
        def run(spec: str, rep: int) -> dict:
            task = bar.add_task(f"{spec} [{rep + 1}/{repeat}]", total=len(clips))
            job = dict(spec=spec, open=opened[spec], clips=job_clips, language=language, beam=beam, threads=threads,
                       max_new_tokens=max_new_tokens)
            return _run_spec(job, lambda: bar.advance(task))

        for rep in range(repeat):
            for spec, result in zip(specs, _parallel(lambda s: run(s, rep), specs, jobs)):
                raw[spec].append(result)
    return {
        "settings": {"data": [str(d) for d in data], "language": language, "beam": beam, "threads": threads,
                     "jobs": jobs, "max_new_tokens": max_new_tokens, "repeat": repeat, "clips": len(clips),
                     "cpu_count": os.cpu_count(), "calib": calib},
        "warnings": warnings,
        "runs": [{**_score_run(s, raw[s], clips), "bits_per_weight": quantized_bits(opened[s])} for s in specs],
    }


def _parallel(fn, items: list, jobs: int) -> list:
    """``[fn(x) for x in items]``, up to ``jobs`` at a time (each call waits on a subprocess)."""
    if jobs <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(fn, items))


def quantized_bits(path: str) -> float | None:
    """Mean bits per quantized weight of a model saved by ``quantize`` (None for anything else)."""
    qfile = Path(path) / "quantization.json"
    if not qfile.is_file():
        return None
    return json.loads(qfile.read_text()).get("report", {}).get("mean_bits_per_weight")


if __name__ == "__main__":
    sys.exit(run_worker(json.loads(sys.stdin.read())))
