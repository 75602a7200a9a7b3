"""Peak memory against time with onnxruntime's CPU arena off: whole transcriptions of vitw8 + dev
in one process per configuration (the setting is per process), CPU seconds and VmHWM.

- ``default``: the runner as it ships (arena on; encoder without a memory pattern);
- ``noarena-encoder`` / ``noarena-all``: ``enable_cpu_mem_arena = False`` for the encoder / every
  session, with glibc's mmap threshold fixed at 128 KiB (``mallopt``), so a freed activation goes
  back to the system instead of staying in the heap.

    for r in 1 2; do for c in default noarena-encoder noarena-all; do
        python benchmarks/onnx-speed/arena_off.py ARTIFACT $c --threads 1 >> OUT.jsonl; done; done
"""

from __future__ import annotations

import argparse
import ctypes
import json
import time

from timing import speed_clips  # imports nothing of asrquant before mallopt below

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("artifact")
    ap.add_argument("config", choices=("default", "noarena-encoder", "noarena-all"))
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    if a.config != "default":
        assert ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1
    import asrquant.models.whisper.onnx_session as onnx_session
    from asrquant.cpu import describe_cpu

    shipped = onnx_session.session_options

    def options(threads, mem_pattern=True):
        o = shipped(threads, mem_pattern)
        if a.config == "noarena-all" or (a.config == "noarena-encoder" and not mem_pattern):
            o.enable_cpu_mem_arena = False
        return o

    onnx_session.session_options = options
    tr, _ = onnx_session.open_onnx_artifact(a.artifact, a.threads)
    clips = [audio for _, audio in speed_clips()]
    cpu, wall = time.process_time(), time.perf_counter()
    tokens = [tr.transcribe(x).tokens for x in clips]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    hwm = next(int(line.split()[1]) // 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(json.dumps({"cpu": describe_cpu(), "config": a.config, "threads": a.threads, "clips": len(clips),
                      "cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "peak_rss_mb": hwm,
                      "tokens": sum(len(t) for t in tokens)}))


if __name__ == "__main__":
    main()
