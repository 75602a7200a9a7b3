"""CPU seconds per second of audio, one thread, each SPEC in its own process (all at once).

    python benchmarks/whisper-cpp/cpu_time.py --json OUT.json --data M1.jsonl [--data M2.jsonl] SPEC [SPEC ...]

For a machine too busy for wall-clock timing: a process's CPU time (``time.process_time``, all its
threads) counts the work it did, not how long it waited for a core. One thread per engine, so no
thread spins waiting for another. Each process loads its engine, transcribes the first clip once
untimed, then every clip (greedy, max 224 new tokens), as ``asrquant bench`` does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def worker(spec: str, manifests: list[str]) -> dict:
    from asrquant.audio import load_audio
    from asrquant.cpu import cpu_info
    from asrquant.engines import open_engine
    from asrquant.eval.manifest import read_manifests

    clips = read_manifests(manifests)
    engine = open_engine(spec, threads=1)
    audios = [(c, load_audio(c.audio)) for c in clips]
    lang = lambda c: c.lang or "en"  # noqa: E731
    engine.transcribe(audios[0][1], lang(audios[0][0]), 1, 224)
    cpu = wall = seconds = 0.0
    for c, a in audios:
        c0, w0 = time.process_time(), time.perf_counter()
        engine.transcribe(a, lang(c), 1, 224)
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        seconds += len(a) / 16000
    return {"spec": spec, "engine": engine.engine, "size_bytes": engine.size_bytes, "clips": len(clips),
            "audio_s": seconds, "cpu_s": cpu, "wall_s": wall, "cpu_per_audio_s": cpu / seconds,
            "cpu": cpu_info()["label"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("specs", nargs="+")
    p.add_argument("--data", action="append", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.specs[0], args.data)))
        return 0
    data = sum((["--data", d] for d in args.data), [])
    env = {"OMP_NUM_THREADS": "1"}
    import os

    procs = [subprocess.Popen([sys.executable, __file__, "--worker", "--json", "-", *data, s], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, **env}) for s in args.specs]
    rows = []
    for s, proc in zip(args.specs, procs):
        out, _ = proc.communicate()
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            print(f"{s}: failed (exit {proc.returncode})", file=sys.stderr)
            return 1
        rows.append(json.loads(lines[-1]))
    Path(args.json).write_text(json.dumps({"data": args.data, "threads": 1, "rows": rows}, indent=2) + "\n")
    for r in rows:
        print(f"{r['cpu_per_audio_s']:.3f} CPU s / audio s  {r['size_bytes'] / 1e6:7.1f} MB  {r['spec']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
