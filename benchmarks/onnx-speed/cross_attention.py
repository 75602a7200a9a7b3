"""The decoder's cross-attention products of one step, alone: the scores with float keys as the
artifact stores them ([dh, ctx]) and transposed ([ctx, dh], the product by transB), with int8
keys; the probabilities' product with float or int8 values. whisper-base's shapes (8 heads, dh 64,
1500 frames); 6 layers' tensors are cycled so they do not stay in the cache, as in a real step.
Median microseconds per layer over 7 interleaved rounds of 20 steps.

    python benchmarks/onnx-speed/cross_attention.py [--threads 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from asrquant.cpu import describe_cpu

HEADS, DH, CTX, LAYERS = 8, 64, 1500, 6
MS = "com.microsoft"
F32, U8, I8 = TensorProto.FLOAT, TensorProto.UINT8, TensorProto.INT8


def session(node, inputs: dict[str, tuple[int, list]], threads: int) -> ort.InferenceSession:
    """One node's graph, its inputs given as name -> (element type, shape)."""
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, t, s) for n, (t, s) in inputs.items()],
                              [helper.make_tensor_value_info(node.output[0], F32, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def cases(threads: int) -> dict[str, tuple[ort.InferenceSession, list[dict]]]:
    """name -> (session, one feed per layer)."""
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, HEADS, 1, DH)).astype(np.float32)
    p = rng.random((1, HEADS, 1, CTX)).astype(np.float32)
    q8 = rng.integers(0, 255, q.shape, dtype=np.uint8)
    p8 = rng.integers(0, 255, p.shape, dtype=np.uint8)
    keys = [rng.standard_normal((1, HEADS, DH, CTX)).astype(np.float32) for _ in range(LAYERS)]
    values = [rng.standard_normal((1, HEADS, CTX, DH)).astype(np.float32) for _ in range(LAYERS)]
    keys8 = [rng.integers(-127, 128, k.shape, dtype=np.int8) for k in keys]
    values8 = [rng.integers(-127, 128, v.shape, dtype=np.int8) for v in values]
    scale, zero = np.array(0.01, np.float32), np.array(128, np.uint8)
    scalar = (F32, [])
    return {
        "scores, float keys [dh, ctx]": (
            session(helper.make_node("FusedMatMul", ["q", "k"], ["s"], domain=MS, alpha=0.125),
                    {"q": (F32, list(q.shape)), "k": (F32, list(keys[0].shape))}, threads),
            [{"q": q, "k": k} for k in keys]),
        "scores, float keys [ctx, dh]": (
            session(helper.make_node("FusedMatMul", ["q", "k"], ["s"], domain=MS, alpha=0.125, transB=1),
                    {"q": (F32, list(q.shape)), "k": (F32, [1, HEADS, CTX, DH])}, threads),
            [{"q": q, "k": np.ascontiguousarray(k.transpose(0, 1, 3, 2))} for k in keys]),
        "scores, int8 keys [dh, ctx]": (
            session(helper.make_node("MatMulIntegerToFloat", ["q", "k", "sq", "sk", "zq"], ["s"], domain=MS),
                    {"q": (U8, list(q.shape)), "k": (I8, list(keys[0].shape)), "sq": scalar, "sk": scalar,
                     "zq": (U8, [])}, threads),
            [{"q": q8, "k": k, "sq": scale, "sk": scale, "zq": zero} for k in keys8]),
        "probabilities x float values": (
            session(helper.make_node("MatMul", ["p", "v"], ["o"]),
                    {"p": (F32, list(p.shape)), "v": (F32, list(values[0].shape))}, threads),
            [{"p": p, "v": v} for v in values]),
        "probabilities x int8 values": (
            session(helper.make_node("MatMulIntegerToFloat", ["p", "v", "sp", "sv"], ["o"], domain=MS),
                    {"p": (U8, list(p.shape)), "v": (I8, list(values[0].shape)), "sp": scalar, "sv": scalar},
                    threads),
            [{"p": p8, "v": v, "sp": np.array(1 / 255, np.float32), "sv": scale} for v in values8]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    ways = cases(a.threads)
    raw = {name: [] for name in ways}
    for _ in range(7):
        for name, (sess, feeds) in ways.items():
            for feed in feeds:  # warm
                sess.run(None, feed)
            start = time.perf_counter()
            for _ in range(20):
                for feed in feeds:
                    sess.run(None, feed)
            raw[name].append(round((time.perf_counter() - start) / 20 / LAYERS * 1e6, 1))
    report = {"cpu": describe_cpu(), "threads": a.threads,
              "us_per_layer": {n: round(float(np.median(v)), 1) for n, v in raw.items()}, "raw": raw}
    for name, us in report["us_per_layer"].items():
        print(f"{name:32s} {us:8.1f} us per layer")
    if a.json:
        with open(a.json, "w") as f:
            f.write(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
