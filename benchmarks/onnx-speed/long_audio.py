"""Long audio: a clip of several 30 s windows, its windows encoded one per encoder run or
ENCODE_BATCH per run; interleaved repetitions, median seconds, and whether the tokens are equal.

    python benchmarks/onnx-speed/long_audio.py DIR[@VARIANT] MANIFEST [MANIFEST ...] [--repeat 5] [--json OUT]

The long clip is every clip of the manifests one after the other (0.5 s of silence between).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from asrquant.audio import load_audio
from asrquant.cpu import describe_cpu
from asrquant.models.whisper import transcribe
from asrquant.models.whisper.onnx_session import open_onnx_artifact


def long_clip(manifests: list[str]) -> np.ndarray:
    parts = []
    for manifest in manifests:
        for line in Path(manifest).read_text().splitlines():
            if line.strip():
                parts += [load_audio(Path(manifest).parent / json.loads(line)["audio"]), np.zeros(8000, np.float32)]
    return np.concatenate(parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec")
    ap.add_argument("manifests", nargs="+")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    directory, _, variant = args.spec.partition("@")
    transcriber = open_onnx_artifact(directory, args.threads, variant or None)[0]
    audio = long_clip(args.manifests)
    batched = transcribe.ENCODE_BATCH
    settings = {"one window per run": 1, f"{batched} windows per run": batched}
    times = {k: {"total_s": [], "encode_s": []} for k in settings}
    tokens = {}
    transcriber.transcribe(audio[: 30 * 16000], language="en")  # warm-up
    for _ in range(args.repeat):
        for name, n in settings.items():
            transcribe.ENCODE_BATCH = n
            t = time.perf_counter()
            out = transcriber.transcribe(audio, language="en")
            times[name]["total_s"].append(time.perf_counter() - t)
            times[name]["encode_s"].append(out.encode_s)
            tokens[name] = out.tokens
    transcribe.ENCODE_BATCH = batched
    report = {"cpu": describe_cpu(), "spec": args.spec, "audio_s": round(len(audio) / 16000, 1),
              "windows": -(-len(audio) // transcribe.WINDOW_SAMPLES), "repeat": args.repeat, "threads": args.threads,
              "median": {k: {m: round(statistics.median(v), 3) for m, v in t.items()} for k, t in times.items()},
              "runs": times, "same_tokens": len({tuple(t) for t in tokens.values()}) == 1}
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
