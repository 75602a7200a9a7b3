"""One 30 s encoder call per artifact (each one's default variant), interleaved: median CPU seconds
of the process (``time.process_time``) and median wall seconds, as
benchmarks/onnx-speed/encoder_cpu_time.py times the variants of one artifact (its timer, here for
artifacts in separate directories). With ``--threads 1`` no onnxruntime thread spins, so the CPU
time counts the encoder's work even on a busy machine.

    python benchmarks/int8-choice/encoder_time.py DIR [DIR ...] [--threads 1] [--repeat 9] [--json OUT]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "onnx-speed"))
from timing import emit, encoder_calls  # noqa: E402

from asrquant.cpu import describe_cpu  # noqa: E402
from asrquant.models.whisper.onnx_session import open_onnx_artifact  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("artifacts", nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--json")
    args = ap.parse_args()
    sessions = {Path(a).name: open_onnx_artifact(Path(a), args.threads)[0].session for a in args.artifacts}
    timed, runs = encoder_calls(sessions, args.repeat)
    report = {"cpu": describe_cpu(), "artifacts": args.artifacts, "threads": args.threads, "repeat": args.repeat,
              **timed}
    emit(report, {"runs": runs}, args.json)


if __name__ == "__main__":
    main()
