"""The int8 GEMMs' weight signedness on this CPU: the same artifact opened with uint8 + 128 weights
(u8 x u8, as exported) and with int8 weights (u8 x s8, what the runner picks on VNNI / AMX CPUs;
asrquant.runtime.int8_weights), interleaved clip by clip.

    python benchmarks/onnx-speed/int8_sign.py DIR --data M1.jsonl --data M2.jsonl [--threads 2]
        [--repeat 3] [--json OUT]

Per clip and repetition the wall time of a whole greedy transcription with each, then the median
over clips of the per-clip ratio s8 / u8 and each repetition's total real-time factor; one 30 s
encoder call timed the same way (median of --calls); and whether both gave the same tokens on
every clip (they should: on a CPU with VNNI both kernels compute the same integer products).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
from timing import emit, interleaved

from asrquant.audio import load_audio
from asrquant.cpu import describe_cpu
from asrquant.eval.manifest import read_manifests
from asrquant.models.whisper.onnx_session import open_onnx_artifact
from asrquant.runtime.int8_weights import ENV

KINDS = ("u8", "s8")


def opened(directory: Path, threads: int) -> dict:
    """Both transcribers of one artifact; the environment variable is read when a graph opens."""
    out = {}
    for kind in KINDS:
        os.environ[ENV] = kind
        out[kind] = open_onnx_artifact(directory, threads)[0]
    os.environ.pop(ENV)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--calls", type=int, default=9)
    ap.add_argument("--json")
    args = ap.parse_args()
    runners = opened(args.artifact, args.threads)
    clips = read_manifests(args.data)
    audio = {c.id: load_audio(c.audio) for c in clips}
    seconds = sum(len(a) for a in audio.values()) / 16000
    mel = (np.random.default_rng(0).standard_normal((80, 3000)) * 0.5).astype(np.float32)
    for k in KINDS:
        runners[k].session.encode(mel)  # warm-up
    encode = {k: (lambda k=k: runners[k].session.encode(mel)) for k in KINDS}
    calls = {k: t["wall_s"] for k, t in interleaved(encode, args.calls).items()}
    wall = {k: [[0.0] * len(clips) for _ in range(args.repeat)] for k in KINDS}
    tokens = {k: {} for k in KINDS}
    for r in range(args.repeat):
        for i, c in enumerate(clips):
            order = KINDS if (r + i) % 2 == 0 else KINDS[::-1]  # neither always goes first
            for k in order:
                t = time.perf_counter()
                tokens[k][c.id] = runners[k].transcribe(audio[c.id], language=c.lang).tokens
                wall[k][r][i] = time.perf_counter() - t
    ratios = [wall["s8"][r][i] / wall["u8"][r][i] for r in range(args.repeat) for i in range(len(clips))]
    rtf = {k: [round(sum(rep) / seconds, 4) for rep in wall[k]] for k in KINDS}
    report = {
        "cpu": describe_cpu(), "artifact": str(args.artifact), "threads": args.threads, "clips": len(clips),
        "audio_s": round(seconds, 1), "repeat": args.repeat,
        "encoder_call_s_median": {k: round(statistics.median(v), 4) for k, v in calls.items()},
        "encoder_call_ratio_s8_u8": round(statistics.median(calls["s8"]) / statistics.median(calls["u8"]), 3),
        "rtf_per_repetition": rtf,
        "rtf_ratio_s8_u8_per_repetition": [round(a / b, 3) for a, b in zip(rtf["s8"], rtf["u8"])],
        "clip_ratio_s8_u8_median": round(statistics.median(ratios), 3),
        "same_tokens": sum(tokens["u8"][c.id] == tokens["s8"][c.id] for c in clips),
    }
    emit(report, {"encoder_calls_s": calls, "wall_s": wall}, args.json)


if __name__ == "__main__":
    main()
