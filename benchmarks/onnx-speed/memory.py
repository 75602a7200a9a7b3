"""Where an ONNX artifact's resident memory goes: one process's RSS and peak RSS (VmRSS, VmHWM)
after the imports, after the runner opens the artifact, and after each clip it transcribes; then,
each in a fresh process, what opening one graph alone adds, with onnxruntime's weight prepacking
and without it. With ``--no-prepack`` the runner's own sessions open without prepacking too, and
the wall time of the clips says what that costs.

    python benchmarks/onnx-speed/memory.py DIR[@VARIANT] [--clips 8] [--threads 2] [--no-prepack] [--json OUT]

The clips are vitw8 + dev's first ones (timing.speed_clips).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def status() -> dict[str, float]:
    """VmRSS and VmHWM of this process, MB."""
    out = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def stages(spec: str, clips: int, threads: int, prepack: bool) -> tuple[list[dict], float]:
    marks = [{"stage": "python", **status()}]
    import numpy  # noqa: F401
    import onnxruntime  # noqa: F401
    marks.append({"stage": "import numpy, onnxruntime", **status()})
    from timing import speed_clips

    import asrquant.models.whisper.onnx_session as onnx_session
    from asrquant.runtime.onnx import open_onnx_engine

    if not prepack:
        shipped = onnx_session.session_options

        def options(threads, mem_pattern=True):
            o = shipped(threads, mem_pattern)
            o.add_session_config_entry("session.disable_prepacking", "1")
            return o

        onnx_session.session_options = options
    marks.append({"stage": "import asrquant", **status()})
    audio = speed_clips()[:clips]
    marks.append({"stage": f"read {len(audio)} clips", **status()})
    engine = open_onnx_engine(spec, threads)
    marks.append({"stage": "open the artifact", **status()})
    start = time.perf_counter()
    for i, (clip_id, x) in enumerate(audio):
        engine.transcribe(x, "en" if clip_id.startswith("vitw") else None, 1, 224)
        marks.append({"stage": f"clip {i + 1}", **status()})
    return marks, round(time.perf_counter() - start, 2)


def one_graph(path: str, prepack: bool, threads: int, signed: str | None = None) -> float:
    """RSS added by opening the graph at ``path`` alone, as the runner opens it (MB): ``signed`` is
    the file it opens where int8 weights run signed (its twin), None for an artifact without twins."""
    from asrquant.runtime.int8_weights import open_graph
    from asrquant.runtime.onnx import session_options

    options = session_options(threads, mem_pattern=not Path(path).name.startswith("encoder"))
    if not prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")
    before = status()["VmRSS"]
    keep = open_graph(Path(path), options, signed=Path(signed) if signed else None)  # noqa: F841  (held while measured)
    return round(status()["VmRSS"] - before, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-prepack", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--graph", help=argparse.SUPPRESS)  # the child process of one graph's figure
    ap.add_argument("--signed", help=argparse.SUPPRESS)  # and the file it opens where weights run signed
    a = ap.parse_args()
    if a.graph:
        import onnxruntime  # noqa: F401  (imported before the first figure, as in the runner)
        print(one_graph(a.graph, not a.no_prepack, a.threads, a.signed))
        return
    from asrquant.cpu import describe_cpu
    from asrquant.runtime.onnx_layout import open_variant, signed_graph_files

    directory, _, variant = a.spec.partition("@")
    manifest, name, files = open_variant(Path(directory), variant or None, "whisper")
    signed = signed_graph_files(Path(directory), manifest, name, files)
    graphs = {}
    for role in ("encoder", "decoder_step"):
        path = str(Path(directory) / files[role])
        twin = ["--signed", str(Path(directory) / signed[role])] if role in signed else []
        graphs[files[role]] = {
            mode: float(subprocess.run([sys.executable, __file__, "x", "--graph", path, "--threads", str(a.threads)]
                                       + twin + ([] if mode == "prepacked" else ["--no-prepack"]),
                                       capture_output=True, text=True, check=True).stdout.split()[-1])
            for mode in ("prepacked", "not prepacked")}
    marks, seconds = stages(a.spec, a.clips, a.threads, not a.no_prepack)
    report = {"cpu": describe_cpu(), "spec": a.spec, "threads": a.threads, "prepacking": not a.no_prepack,
              "stages_mb": marks, "clips_wall_s": seconds, "one_graph_mb": graphs}
    print(json.dumps(report, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
