"""Whether an artifact's signed twins (asrquant.runtime.onnx_layout) transcribe as the in-memory edit
does: the clips through the artifact as it is (the twins opened, on a CPU where int8 weights run
signed) and through a copy that looks written before twins (its "signed_graphs" records left out,
so the runner signs each graph in memory), each in a fresh process; the tokens of every clip
compared, and whether each process imported ``onnx``.

    python benchmarks/onnx-speed/signed_twins.py DIR[@VARIANT] [--clips 8] [--threads 2] [--json OUT]

The clips are vitw8 + dev's first ones (timing.speed_clips), as memory.py's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def child(spec: str, clips: int, threads: int) -> dict:
    from timing import speed_clips

    from asrquant.runtime.onnx import open_onnx_engine

    engine = open_onnx_engine(spec, threads)
    out = {}
    for clip_id, x in speed_clips()[:clips]:
        t = engine.transcribe(x, "en" if clip_id.startswith("vitw") else None, 1, 224)
        out[clip_id] = {"tokens": [int(i) for i in t.tokens], "text": t.text}
    return {"onnx_imported": "onnx" in sys.modules, "clips": out}


def without_twin_records(src: Path, dst: Path) -> None:
    """A copy of ``src`` whose manifest records no twins. Copied, not hard-linked: onnx refuses to read
    external data from a file with several links (a guard against link attacks), as the edit does."""
    shutil.copytree(src, dst)
    manifest = json.loads((src / "manifest.json").read_text())
    for entry in manifest["variants"].values():
        entry.pop("signed_graphs", None)
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2))


def run(spec: str, clips: int, threads: int) -> dict:
    r = subprocess.run([sys.executable, __file__, spec, "--child", "--clips", str(clips), "--threads", str(threads)],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.spec, a.clips, a.threads)))
        return
    from asrquant.cpu import describe_cpu
    from asrquant.runtime.int8_weights import signed_int8

    directory, at, variant = a.spec.partition("@")
    twins = run(a.spec, a.clips, a.threads)
    with tempfile.TemporaryDirectory(dir=Path(directory).parent) as tmp:
        old = Path(tmp) / Path(directory).name
        without_twin_records(Path(directory), old)
        edited = run(f"{old}{at}{variant}", a.clips, a.threads)
    same = [c for c in twins["clips"] if twins["clips"][c]["tokens"] == edited["clips"][c]["tokens"]]
    report = {"cpu": describe_cpu(), "signed_int8": signed_int8(), "spec": a.spec, "threads": a.threads,
              "twins_onnx_imported": twins["onnx_imported"], "in_memory_onnx_imported": edited["onnx_imported"],
              "same_tokens": f"{len(same)} / {len(twins['clips'])}",
              "clips": {c: {**twins["clips"][c], "same_as_in_memory_edit": c in same} for c in twins["clips"]}}
    print(json.dumps(report, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
