"""Long audio: its 30 s windows through the encoder one per run, or ``--batch`` per run.

    python benchmarks/onnx-speed/long_audio.py DIR[@VARIANT] MANIFEST [MANIFEST ...] [--batch 2] [--repeat 5]

The long clip is every clip of the manifests one after the other (0.5 s of silence between).
1. Tokens: the whole clip transcribed both ways (greedy) must give the same token ids.
2. Encoder time: all its windows' log-mels encoded one window per run, then in runs of
   ``--batch``, interleaved ``--repeat`` times; median wall seconds and, for a busy machine,
   median CPU seconds of the process (``time.process_time``; with ``--threads 1`` no thread spins).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from timing import emit, interleaved, medians

from asrquant.audio import load_audio
from asrquant.cpu import describe_cpu
from asrquant.features import log_mel
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
    ap.add_argument("--batch", type=int, default=2, help="windows per encoder run, against one")
    ap.add_argument("--json")
    args = ap.parse_args()
    directory, _, variant = args.spec.partition("@")
    transcriber = open_onnx_artifact(directory, args.threads, variant or None)[0]
    session = transcriber.session
    audio = long_clip(args.manifests)
    batch, shipped = args.batch, transcribe.ENCODE_BATCH
    out = {}
    for n in (1, batch):
        transcribe.ENCODE_BATCH = n
        out[n] = transcriber.transcribe(audio, language="en").tokens
    transcribe.ENCODE_BATCH = shipped
    w = transcribe.WINDOW_SAMPLES
    mels = [log_mel(audio[i : i + w]) for i in range(0, len(audio), w)]
    ways = {"one window per run": lambda: [session.encode(m) for m in mels],
            f"{batch} windows per run": lambda: [session.encode_batch(mels[i : i + batch])
                                                  for i in range(0, len(mels), batch)]}
    times = interleaved(ways, args.repeat)
    report = {"cpu": describe_cpu(), "spec": args.spec, "audio_s": round(len(audio) / 16000, 1), "windows": len(mels),
              "repeat": args.repeat, "threads": args.threads, "same_tokens": out[1] == out[batch],
              "tokens": len(out[1]), "median": medians(times, 3)}
    emit(report, {"runs": times}, args.json)


if __name__ == "__main__":
    main()
