"""The log-mel front end as it was (every frame of the padded 30 s window transformed, numpy's BLAS
on its default threads) against the runner's (only the frames that touch the sound, BLAS on one
thread): whole transcriptions of vitw8 + dev with each, interleaved clip by clip in one process,
and the front end alone. Both give the same features bit for bit (tests/test_features.py).

    python benchmarks/onnx-speed/front_end.py ARTIFACT [--threads 2] [--repeat 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from timing import speed_clips

import asrquant.models.whisper.transcribe as transcribe
from asrquant import features
from asrquant.cpu import describe_cpu
from asrquant.models.whisper.onnx_session import open_onnx_artifact


def every_frame(audio: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """The front end before: the STFT and filterbank of all 3000 frames, BLAS threads as numpy has them."""
    mel = features.mel_filters(n_mels) @ features._power_spectrum(features.pad_or_trim(audio).astype(np.float64)).T
    spec = np.log10(np.maximum(mel, 1e-10))
    return ((np.maximum(spec, spec.max() - 8.0) + 4.0) / 4.0).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("artifact")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    tr, _ = open_onnx_artifact(a.artifact, a.threads)
    clips = [audio for _, audio in speed_clips()]
    fronts = {"every frame, BLAS threads": every_frame, "frames with sound, one BLAS thread": features.log_mel}
    tr.transcribe(clips[0])
    wall = {f: [] for f in fronts}
    cpu = {f: [] for f in fronts}
    alone = {f: [] for f in fronts}
    for _ in range(a.repeat):
        w, c = dict.fromkeys(fronts, 0.0), dict.fromkeys(fronts, 0.0)
        for audio in clips:
            for name, fn in fronts.items():
                transcribe.log_mel = fn
                c0, w0 = time.process_time(), time.perf_counter()
                tr.transcribe(audio)
                c[name] += time.process_time() - c0
                w[name] += time.perf_counter() - w0
                c0 = time.process_time()
                fn(audio[: features.N_SAMPLES])
                alone[name].append(time.process_time() - c0)
        for name in fronts:
            wall[name].append(w[name])
            cpu[name].append(c[name])
    transcribe.log_mel = features.log_mel
    first = next(iter(fronts))
    seconds = sum(len(x) for x in clips) / features.SAMPLE_RATE
    report = {"cpu": describe_cpu(), "artifact": a.artifact, "threads": a.threads, "clips": len(clips),
              "audio_s": round(seconds, 1),
              "rtf_per_repetition": {f: [round(x / seconds, 4) for x in wall[f]] for f in fronts},
              "cpu_s_per_repetition": {f: [round(x, 2) for x in cpu[f]] for f in fronts},
              "wall_ratio_per_repetition": {f: [round(x / y, 3) for x, y in zip(wall[f], wall[first])] for f in fronts},
              "front_end_alone_cpu_ms_median": {f: round(1e3 * statistics.median(alone[f]), 2) for f in fronts}}
    print(json.dumps(report, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
