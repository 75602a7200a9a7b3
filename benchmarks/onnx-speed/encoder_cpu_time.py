"""One 30 s encoder call per variant of an artifact, interleaved: median CPU seconds of the
process (``time.process_time``) and median wall seconds. With ``--threads 1`` no onnxruntime
thread spins, so the CPU time counts the encoder's work even on a busy machine.

    python benchmarks/onnx-speed/encoder_cpu_time.py DIR default fused [--threads 1] [--repeat 9] [--json OUT]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from timing import emit, encoder_calls

from asrquant.cpu import describe_cpu
from asrquant.models.whisper.onnx_session import open_onnx_artifact


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("artifact")
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--json")
    args = ap.parse_args()
    sessions = {v: open_onnx_artifact(Path(args.artifact), args.threads, v)[0].session for v in args.variants}
    timed, runs = encoder_calls(sessions, args.repeat)
    report = {"cpu": describe_cpu(), "artifact": args.artifact, "threads": args.threads, "repeat": args.repeat,
              **timed}
    emit(report, {"runs": runs}, args.json)

if __name__ == "__main__":
    main()
