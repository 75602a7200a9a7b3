"""One encoder-shaped GEMM (1500 rows) per onnxruntime kernel, interleaved, 2 threads: the int8
chain's ``MatMulIntegerToFloat`` (u8 x s8) against ``MatMulNBits`` (4 bits, blocks of 32 and 64)
with float compute (accuracy_level 0) and with int8 activations (accuracy_level 4): whether the
encoder could keep its 4-bit weights in memory instead of expanding them to int8 at load.

    python benchmarks/onnx-speed/gemm_kernels.py [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from asrquant.cpu import describe_cpu

MS = "com.microsoft"
ROWS = 1500
SHAPES = ((512, 512), (512, 2048), (2048, 512))  # whisper-base's encoder Linears: q/k/v/out, fc1, fc2


def _session(node, x_type, k, inits, threads):
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", x_type, [1, ROWS, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid(MS, 1)],
                              ir_version=10)
    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads = threads, 1
    return ort.InferenceSession(model.SerializeToString(), o)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--json")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    runs = {}
    for k, n in SHAPES:
        for block in (32, 64):
            for level in (0, 4):
                b = rng.integers(0, 256, (n, k // block, block // 2)).astype(np.uint8)
                s = (rng.random(n * k // block) * 0.01).astype(np.float32)
                node = helper.make_node("MatMulNBits", ["x", "b", "s"], ["y"], domain=MS, K=k, N=n, bits=4,
                                        block_size=block, accuracy_level=level)
                sess = _session(node, TensorProto.FLOAT, k, [numpy_helper.from_array(b, "b"),
                                                             numpy_helper.from_array(s, "s")], a.threads)
                runs[f"{k}x{n} MatMulNBits block {block} level {level}"] = (
                    sess, {"x": rng.standard_normal((1, ROWS, k)).astype(np.float32)})
        node = helper.make_node("MatMulIntegerToFloat", ["x", "w", "one", "ws", "zx", "zw"], ["y"], domain=MS)
        inits = [numpy_helper.from_array(rng.integers(-127, 128, (k, n)).astype(np.int8), "w"),
                 numpy_helper.from_array(np.float32(1), "one"),
                 numpy_helper.from_array((rng.random(n) * 0.01).astype(np.float32), "ws"),
                 numpy_helper.from_array(np.uint8(128), "zx"), numpy_helper.from_array(np.int8(0), "zw")]
        runs[f"{k}x{n} MatMulIntegerToFloat u8 x s8"] = (
            _session(node, TensorProto.UINT8, k, inits, a.threads),
            {"x": rng.integers(0, 256, (1, ROWS, k)).astype(np.uint8)})
    times = {name: [] for name in runs}
    for _ in range(a.repeat):
        for name, (sess, feeds) in runs.items():
            t = time.perf_counter()
            sess.run(None, feeds)
            times[name].append(time.perf_counter() - t)
    report = {"cpu": describe_cpu(), "onnxruntime": ort.__version__, "threads": a.threads, "rows": ROWS,
              "median_ms": {name: round(1e3 * statistics.median(t), 2) for name, t in times.items()}}
    print(json.dumps(report, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
