"""Where an ONNX artifact's time goes: onnxruntime's own profiler (enable_profiling) over the
runner transcribing some clips; per graph (encoder, decoder step), the share of each op type
in the summed node time, and the encoder's attention share.

    python benchmarks/onnx-speed/profile_ops.py DIR[@VARIANT] MANIFEST [--limit N] [--threads 2] [--json OUT]

The sessions are the runner's own (same options), with profiling switched on; the first clip
is a warm-up and is left out of the sums.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

import asrquant.models.whisper.onnx_session as onnx_session
from asrquant.audio import load_audio
from asrquant.cpu import describe_cpu
from asrquant.runtime.onnx import session_options

ATTENTION_OPS = {"MultiHeadAttention", "Attention", "Softmax"}


def profiled_options(prefix: str):
    def options(threads, mem_pattern=True):
        opts = session_options(threads, mem_pattern)
        opts.enable_profiling = True
        opts.profile_file_prefix = prefix
        return opts
    return options


def op_times(trace: list[dict], skip_runs: int) -> dict[str, float]:
    """Summed microseconds per op type over the model_run events after the first ``skip_runs``."""
    runs = sorted(e["ts"] for e in trace if e.get("cat") == "Session" and e["name"] == "model_run")
    start = runs[skip_runs] if len(runs) > skip_runs else 0
    out: dict[str, float] = defaultdict(float)
    for e in trace:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= start:
            out[e["args"]["op_name"]] += e["dur"]
    return dict(out)


def attention_nodes(trace: list[dict], skip_runs: int) -> float:
    """Microseconds in the encoder's attention: Softmax, the fused op, and the MatMuls that are not
    a Linear's (a Linear's node is named after its module, ``/encoder/blocks.N/...``; the traced
    products of scores and probabilities are ``/MatMul_N``). The heads' Reshape/Transpose are left
    out (a few percent)."""
    runs = sorted(e["ts"] for e in trace if e.get("cat") == "Session" and e["name"] == "model_run")
    start = runs[skip_runs] if len(runs) > skip_runs else 0
    total = 0.0
    for e in trace:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < start:
            continue
        op = e["args"]["op_name"]
        if op in ATTENTION_OPS or (op in ("MatMul", "FusedMatMul") and "blocks." not in e["name"]):
            total += e["dur"]
    return total


def count_runs(session) -> int:
    """Runs so far of a session wrapped by :func:`counted`."""
    return session._asrquant_runs


def counted(session):
    """Count the runs of ``session`` (run and run_with_iobinding), to skip the warm-up clip's."""
    session._asrquant_runs = 0
    for name in ("run", "run_with_iobinding"):
        method = getattr(session, name)

        def wrapper(*a, _method=method, **kw):
            session._asrquant_runs += 1
            return _method(*a, **kw)
        setattr(session, name, wrapper)
    return session


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec")
    ap.add_argument("manifest")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    directory, _, variant = args.spec.partition("@")
    clips = [json.loads(line) for line in Path(args.manifest).read_text().splitlines() if line.strip()][: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        onnx_session.session_options = profiled_options(os.path.join(tmp, "prof"))
        transcriber, _ = onnx_session.open_onnx_artifact(directory, args.threads, variant or None)
        s = transcriber.session
        counted(s.step_graph)
        warm = {}
        for i, c in enumerate(clips):
            audio = load_audio(Path(args.manifest).parent / c["audio"])
            transcriber.transcribe(audio, language=c.get("lang"))
            if i == 0:  # runs of the warm-up clip, left out of the sums
                warm = {"encoder": 1, "decoder_step": count_runs(s.step_graph)}
        report = {"cpu": describe_cpu(), "spec": args.spec, "clips": len(clips) - 1, "threads": args.threads}
        for graph, sess in (("encoder", s.encoder), ("decoder_step", s.step_graph)):
            trace = json.loads(Path(sess.end_profiling()).read_text())
            # the encoder runs once per clip; the step graph once per token plus each clip's prompt
            skip = warm.get(graph, 0)
            times = op_times(trace, skip)
            total = sum(times.values())
            entry = {"total_ms": round(total / 1e3, 1),
                     "share": {k: round(v / total, 4) for k, v in sorted(times.items(), key=lambda kv: -kv[1])}}
            if graph == "encoder":
                entry["attention_share"] = round(attention_nodes(trace, skip) / total, 4)
            report[graph] = entry
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
