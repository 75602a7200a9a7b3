"""Resident memory of one MatMulNBits weight in onnxruntime, with its weight prepacking and without:
whisper-base's 4-bit token table (the logits' product, 51865 x 512, blocks of 64, accuracy level 4
as the `cpu` target exports it), its weights in an external file as the artifact stores them.
Each case runs in a fresh process that imports nothing but numpy and onnxruntime; RSS is read after
the session opens and after one run.

    python benchmarks/onnx-speed/prepack_memory.py [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from memory import status  # this directory's memory.py: VmRSS and VmHWM of this process

N, K, BLOCK = 51865, 512, 64


def write(path: Path) -> dict[str, float]:
    """The one-node graph at ``path`` (weights external, page-aligned); the tensors' sizes in MB."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    b = rng.integers(0, 256, (N, K // BLOCK, BLOCK // 2), dtype=np.uint8)
    s = rng.random(N * (K // BLOCK), dtype=np.float32)
    node = helper.make_node("MatMulNBits", ["a", "b", "s"], ["y"], domain="com.microsoft", K=K, N=N, bits=4,
                            block_size=BLOCK, accuracy_level=4)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, K])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N])],
                              [numpy_helper.from_array(b, "b"), numpy_helper.from_array(s, "s")])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    onnx.save(model, path, save_as_external_data=True, location=path.name + ".data", size_threshold=0)
    return {"codes_mb": round(b.nbytes / 2**20, 1), "scales_mb": round(s.nbytes / 2**20, 1)}


def measure(path: str, prepack: bool) -> dict[str, float]:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    if not prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")
    before = status()["VmRSS"]
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    opened = status()["VmRSS"]
    session.run(None, {"a": np.ones((1, K), np.float32)})
    return {"opened_mb": round(opened - before, 1), "after_a_run_mb": round(status()["VmRSS"] - before, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--case", nargs=2, help=argparse.SUPPRESS)  # the child process: PATH prepacked|not
    a = ap.parse_args()
    if a.case:
        print(json.dumps(measure(a.case[0], a.case[1] == "prepacked")))
        return
    import onnxruntime

    from asrquant.cpu import describe_cpu

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "token_table.onnx"
        sizes = write(path)
        cases = {mode: json.loads(subprocess.run([sys.executable, __file__, "--case", str(path), mode], check=True,
                                                 capture_output=True, text=True).stdout.splitlines()[-1])
                 for mode in ("prepacked", "not prepacked")}
    report = {"cpu": describe_cpu(), "onnxruntime": onnxruntime.__version__, "shape": [N, K], "block": BLOCK,
              **sizes, "added_rss": cases}
    print(json.dumps(report, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
