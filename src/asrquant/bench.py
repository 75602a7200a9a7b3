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
import signal
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
    """Open the spec, warm up on the first usable clip, then transcribe the clips one at a time:
    each is decoded when its turn comes (a long set is never held in memory at once), and a clip
    that fails becomes an event that says why instead of ending the run."""
    from .audio import check_speech, load_audio
    from .cpu import cpu_info
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

    def usable(clip):
        try:
            return check_speech(load_audio(clip["audio"]), clip["audio"])
        except AudioError as e:
            return e

    warm = None
    for clip in job["clips"]:
        audio = usable(clip)
        if not isinstance(audio, AudioError):
            warm = (clip, audio)
            break
    if warm is not None:
        try:
            engine.transcribe(warm[1], language(warm[0]), **decode_args)
        except AsrQuantError:
            pass  # that clip reports its own error when its turn comes
    warm = None
    for clip in job["clips"]:
        audio = usable(clip)
        if isinstance(audio, AudioError):
            _emit("clip", id=clip["id"], error=str(audio), kind=audio.kind)
            continue
        t = time.perf_counter()
        try:
            out = engine.transcribe(audio, language(clip), **decode_args)
        except AsrQuantError as e:
            _emit("clip", id=clip["id"], error=str(e), kind="model_error")
            continue
        _emit("clip", id=clip["id"], hyp=out.text, stops=out.stops, decode_s=time.perf_counter() - t,
              audio_s=len(audio) / 16000.0, encode_s=getattr(out, "encode_s", None))
        del audio
    _emit("done", peak_rss_mb=_peak_rss_mb(), cpu=cpu_info()["label"])
    return 0


# ---- the parent: spawn, score, report ----------------------------------------------------

# Every child process this bench started and has not reaped: killed on an interrupt, so that no
# worker outlives the command (threads of --jobs wait on theirs; they cannot be interrupted).
_LIVE: set[subprocess.Popen] = set()


# Signals that stop a bench. Held off while a worker is forked: preexec_fn makes the fork run
# Python's at-fork handlers, and a Ctrl-C landing inside one is swallowed ("Exception ignored in
# _releaseLock"), so the bench would run on to the end. Held, it is delivered right after the fork.
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _child_setup() -> None:
    """In the child, before exec: take the stop signals again (the mask survives exec), and
    SIGKILL when the parent dies (even by SIGKILL). Linux only."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _spawn(cmd: list[str], **kwargs) -> subprocess.Popen:
    if sys.platform != "linux":
        proc = subprocess.Popen(cmd, **kwargs)
    else:
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            proc = subprocess.Popen(cmd, preexec_fn=_child_setup, **kwargs)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
    _LIVE.add(proc)
    return proc


def _reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    _LIVE.discard(proc)


def _kill_children() -> None:
    for proc in list(_LIVE):
        if proc.poll() is None:
            proc.kill()


def _run_spec(job: dict, on_clip) -> dict:
    """One worker's events. A worker that cannot open its model, or dies on the way, gives a
    result with ``error`` (and the clips it finished) rather than an exception: the other models'
    measurements are kept. The worker never outlives this call, also on an interrupt."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(job["threads"]))
    proc = _spawn([sys.executable, "-m", "asrquant.bench"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                  env=env)
    result = {"clips": {}}
    try:
        try:
            proc.stdin.write(json.dumps(job))
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it died at start; its exit status says so below
        for line in proc.stdout:
            if not line.startswith("{"):
                continue  # a library printing to stdout
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            kind = ev.pop("event", None)
            if kind == "error":
                result["error"] = ev["message"]
            elif kind == "clip":
                result["clips"][ev["id"]] = ev
                on_clip()
            elif kind is not None:
                result.update(ev)
        code = proc.wait()
    finally:
        _reap(proc)
    if "error" not in result and (code != 0 or "peak_rss_mb" not in result):
        result["error"] = (f"the bench process died (exit {code}) after {len(result['clips'])} of "
                           f"{len(job['clips'])} clips; see its output above")
    return result


# How a clip can fail, as the report counts it: the model's output (no word after normalisation:
# empty, or only punctuation as a model with broken weights gives, "!!!!!!!!"; a loop; the length
# limit) or the clip itself (unreadable, silent, too short) or the model on it (an error).
FAILURE_KINDS = ("empty", "loop", "max_length", "bad_input", "silence", "too_short", "model_error")


def _score_run(spec: str, raw: list[dict], clips: list[Clip]) -> dict:
    from .eval.metrics import score

    failed = next((r["error"] for r in raw if "error" in r), None)
    ok = [r for r in raw if "error" not in r]
    if not ok:
        return _failed_run(spec, failed, raw, clips)
    raw, first = ok, ok[0]
    rows, failures = [], dict.fromkeys(FAILURE_KINDS, 0)
    for clip in clips:
        ev = first["clips"][clip.id]
        row = {"id": clip.id, "category": clip.category, "lang": clip.lang, "ref": clip.text}
        if "error" in ev:
            failures[ev.get("kind", "bad_input")] += 1
            rows.append({**row, "hyp": None, "error": ev["error"], "error_kind": ev.get("kind", "bad_input")})
            continue
        s = score(clip.text, ev["hyp"], clip.lang or "en")
        failures["empty"] += s.hyp_words == 0
        failures["loop"] += "loop" in ev["stops"]
        failures["max_length"] += "max_length" in ev["stops"]
        rows.append({**row, "hyp": ev["hyp"], "errors": s.errors, "ref_words": s.ref_words,
                     "agreement": s.agreement, "stops": ev["stops"], "audio_s": ev["audio_s"],
                     "decode_s": statistics.median(r["clips"][clip.id]["decode_s"] for r in raw)})
    scored = [r for r in rows if r.get("error") is None]
    rtfs = [sum(r["clips"][c["id"]]["decode_s"] for c in scored) / max(1e-9, sum(c["audio_s"] for c in scored))
            for r in raw]
    return {
        "spec": spec, "engine": first["engine"], "size_bytes": first["size_bytes"], "cpu": first.get("cpu"),
        **_aggregate(scored),
        "rtf": statistics.median(rtfs), "rtf_runs": rtfs, "encoder_share": _encoder_share(raw, scored),
        "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in raw),
        "load_s": statistics.median(r["load_s"] for r in raw),
        "failures": failures,
        "per_category": {cat: _aggregate([r for r in scored if r["category"] == cat])
                         for cat in sorted({r["category"] for r in scored})},
        "clips": rows,
        **({"notes": [f"a repetition failed: {failed}"]} if failed else {}),
    }


def _failed_run(spec: str, error: str, raw: list[dict], clips: list[Clip]) -> dict:
    """A model that could not be opened or whose worker died: its row says why, and keeps the
    transcripts it finished before that."""
    done = next((r for r in raw if "error" in r), raw[0])["clips"]
    rows = []
    for clip in clips:
        ev = done.get(clip.id, {"error": "not run", "kind": "model_error"})
        row = {"id": clip.id, "category": clip.category, "lang": clip.lang, "ref": clip.text}
        if "error" in ev:
            rows.append({**row, "hyp": None, "error": ev["error"], "error_kind": ev.get("kind", "bad_input")})
        else:
            rows.append({**row, "hyp": ev["hyp"], "stops": ev["stops"], "audio_s": ev["audio_s"],
                         "decode_s": ev["decode_s"]})
    return {"spec": spec, "error": error, "engine": raw[0].get("engine"), "size_bytes": raw[0].get("size_bytes"),
            "clips_done": sum(r["hyp"] is not None for r in rows), "clips": rows}


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
        proc = _spawn(cmd)
        try:
            code = proc.wait()
        finally:
            _reap(proc)
        if code != 0:
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
          calib: str | None = None, jobs: int = 1, on_report=None) -> dict:
    """Every spec on the same clips, each in its own process; ``jobs`` > 1 runs that many at once
    (for accuracy tables: the timings of concurrent runs share the CPU and are not comparable).

    ``on_report(report)`` is called with the report so far (``settings.partial``) after every
    finished run and on an interrupt, so what was measured is never lost."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if len(set(specs)) != len(specs):
        raise AsrQuantError("the same --model is given twice")
    if limit is not None and limit < 1:
        raise AsrQuantError(f"--limit: must be at least 1 (got {limit})")
    if repeat < 1:
        raise AsrQuantError(f"--repeat: must be at least 1 (got {repeat})")
    clips = read_manifests(data)[:limit] if limit else read_manifests(data)
    unscorable = [c for c in clips if not c.text.strip()]
    if unscorable:  # it would be scored as pure insertions over 0 words
        c = unscorable[0]
        raise AsrQuantError(f"{c.manifest}: clip {c.id!r}: field 'text' is empty; the bench needs a reference "
                            f"to score ({len(unscorable)} such clip(s))")
    job_clips = [{"id": c.id, "audio": str(c.audio), "lang": c.lang} for c in clips]
    settings = {"data": [str(d) for d in data], "language": language, "beam": beam, "threads": threads,
                "jobs": jobs, "max_new_tokens": max_new_tokens, "repeat": repeat, "clips": len(clips),
                "cpu_count": os.cpu_count(), "calib": calib}
    raw: dict[str, list[dict]] = {s: [] for s in specs}
    opened: dict[str, str] = {}
    warnings: list[str] = []

    def report(partial: str | None) -> dict:
        runs = [{**_score_run(s, raw[s], clips), "bits_per_weight": quantized_bits(opened.get(s, s))}
                for s in specs if raw[s]]
        return {"settings": {**settings, **({"partial": partial} if partial else {})}, "warnings": warnings,
                "runs": runs}

    def done() -> str:
        """How far the run is; a model that could not be opened or quantized is counted as failed, not done."""
        failed = sum(any("error" in r for r in raw[s]) for s in specs)
        ok = sum(1 for s in specs for r in raw[s] if "error" not in r)
        return f"{ok} of {len(specs) * repeat} runs done" + (f", {failed} model(s) failed" if failed else "")

    def save(partial: str) -> None:
        if on_report is not None:
            on_report(report(partial))

    try:
        # Quantize (MODEL@RECIPE) and run the specs ``jobs`` at a time: each in its own process.
        opened.update(zip(specs, _parallel(lambda s: _open_once(s, calib, threads, raw), specs, jobs)))
        for spec, path in opened.items():
            overlap = calibration_overlap(path, clips) if not raw[spec] else []
            if overlap:
                warnings.append(f"{spec}: {len(overlap)} evaluation clip(s) were calibration clips: "
                                f"{', '.join(overlap[:5])}{' ...' if len(overlap) > 5 else ''}")
        for w in warnings:
            Console(stderr=True).print(f"[bold red]WARNING: {w}; its figures are not a fair evaluation[/]")
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      disable=not progress, transient=False) as bar:
            def run(spec: str, rep: int) -> None:
                if any("error" in r for r in raw[spec]):
                    return  # failed once (or could not be quantized): its row says why
                task = bar.add_task(f"{spec} [{rep + 1}/{repeat}]", total=len(clips))
                job = dict(spec=spec, open=opened[spec], clips=job_clips, language=language, beam=beam,
                           threads=threads, max_new_tokens=max_new_tokens)
                raw[spec].append(_run_spec(job, lambda: bar.advance(task)))
                save(done())

            for rep in range(repeat):
                _parallel(lambda s: run(s, rep), specs, jobs)
    except KeyboardInterrupt:
        _kill_children()
        save("interrupted; " + done())
        raise
    return report(None)


def _open_once(spec: str, calib: str | None, threads: int, raw: dict) -> str:
    """What the workers open for ``spec``; a spec that cannot be quantized becomes a failed run."""
    try:
        return _quantize_once(spec, calib, threads) or spec
    except AsrQuantError as e:
        raw[spec].append({"error": str(e), "clips": {}})
        return spec


def _parallel(fn, items: list, jobs: int) -> list:
    """``[fn(x) for x in items]``, up to ``jobs`` at a time (each call waits on a subprocess)."""
    if jobs <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(fn, x) for x in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            # The pool waits for its threads on the way out; they wait for their processes.
            pool.shutdown(wait=False, cancel_futures=True)
            _kill_children()
            raise


def quantized_bits(path: str) -> float | None:
    """Mean bits per quantized weight of a model saved by ``quantize`` (None for anything else)."""
    qfile = Path(path) / "quantization.json"
    if not qfile.is_file():
        return None
    return json.loads(qfile.read_text()).get("report", {}).get("mean_bits_per_weight")


def _worker_main() -> int:
    try:
        text = sys.stdin.read()
        if not text.strip():
            return 2  # the parent was interrupted before it sent the job: nothing to do, nothing to say
        return run_worker(json.loads(text))
    except KeyboardInterrupt:
        return 130  # Ctrl-C reaches the whole process group; the parent reports it, once


if __name__ == "__main__":
    sys.exit(_worker_main())
