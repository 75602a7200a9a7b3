"""Whisper's encoder positions computed by the encoder graph instead of stored in it.

The encoder adds a fixed sinusoidal table ([1500, d]: 1.15 MB in float16 for tiny.en, 1.5 MB
for base) that the trace stores as a constant. Every Whisper checkpoint we have seen holds it
as the formula gives it, rounded to float32 or through float32 to float16 (the CTranslate2
files). When the model's table is exactly one of those, the graph computes it from its two
sizes (Range, Mul, Sin, Cos, Concat in float64, then the same roundings); onnxruntime folds
those constant nodes once when the session loads, so a run costs nothing more and the file
is smaller. Before the swap the new nodes are run through onnxruntime and must give the table
bit for bit (libm and onnxruntime may differ by an ulp in float64, which a rounding to
float32 can expose); a table that is not the formula, or does not come out exact, stays
stored, so a fine-tune that trained its positions exports as before.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from .model import sinusoid_rounding

# name prefix of the nodes and small initializers added here
PREFIX = "encoder_positions"


def table_rounding(table: np.ndarray) -> tuple[int, ...] | None:
    """The Cast chain after float64 that reproduces ``table`` from the formula, or None."""
    rounding = sinusoid_rounding(torch.from_numpy(np.asarray(table, dtype=np.float32)))
    if rounding is None:
        return None
    return {"float32": (TensorProto.FLOAT,),
            "float16": (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.FLOAT)}[rounding]


def position_nodes(n: int, d: int, casts: tuple[int, ...], output: str) -> tuple[list, list]:
    """(nodes, initializers) computing the [n, d] table into ``output``, as
    :func:`asrquant.models.whisper.model.sinusoids` does."""
    increment = math.log(10000.0) / (d // 2 - 1)
    inv = np.exp(-increment * np.arange(d // 2, dtype=np.float64))[None, :]  # [1, d/2]
    p = PREFIX
    inits = [
        numpy_helper.from_array(np.array(0.0), f"{p}.start"),
        numpy_helper.from_array(np.array(float(n)), f"{p}.limit"),
        numpy_helper.from_array(np.array(1.0), f"{p}.delta"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), f"{p}.axis1"),
        numpy_helper.from_array(inv, f"{p}.inv_timescales"),
    ]
    nodes = [
        helper.make_node("Range", [f"{p}.start", f"{p}.limit", f"{p}.delta"], [f"{p}/time"], name=f"/{p}/Range"),
        helper.make_node("Unsqueeze", [f"{p}/time", f"{p}.axis1"], [f"{p}/time_col"], name=f"/{p}/Unsqueeze"),
        helper.make_node("Mul", [f"{p}/time_col", f"{p}.inv_timescales"], [f"{p}/scaled"], name=f"/{p}/Mul"),
        helper.make_node("Sin", [f"{p}/scaled"], [f"{p}/sin"], name=f"/{p}/Sin"),
        helper.make_node("Cos", [f"{p}/scaled"], [f"{p}/cos"], name=f"/{p}/Cos"),
        helper.make_node("Concat", [f"{p}/sin", f"{p}/cos"], [f"{p}/f64"], name=f"/{p}/Concat", axis=1),
    ]
    src = f"{p}/f64"
    for i, to in enumerate(casts):
        dst = output if i == len(casts) - 1 else f"{p}/cast{i}"
        nodes.append(helper.make_node("Cast", [src], [dst], name=f"/{p}/Cast{i}", to=to))
        src = dst
    return nodes, inits


def _run(nodes: list, inits: list, output: str, shape: tuple[int, int], opset: int) -> np.ndarray:
    import onnxruntime as ort

    graph = helper.make_graph(nodes, "positions", [], [helper.make_tensor_value_info(output, TensorProto.FLOAT, shape)],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 10)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {})[0]


def compute_positions_in_graph(proto: onnx.ModelProto, table: np.ndarray) -> bool:
    """Replace the constant holding ``table`` in ``proto`` by nodes computing it; True if replaced."""
    table = np.ascontiguousarray(table, dtype=np.float32)
    casts = table_rounding(table)
    if casts is None:
        return False
    g = proto.graph
    index = next((i for i, node in enumerate(g.node) if node.op_type == "Constant" and _holds(node, table)), None)
    if index is None:
        return False
    output = g.node[index].output[0]
    nodes, inits = position_nodes(*table.shape, casts, output)
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if not np.array_equal(_run(nodes, inits, output, table.shape, opset), table):
        return False
    kept = list(g.node[:index]) + nodes + list(g.node[index + 1:])
    del g.node[:]
    g.node.extend(kept)
    g.initializer.extend(inits)
    return True


def _holds(node: onnx.NodeProto, table: np.ndarray) -> bool:
    attr = node.attribute[0] if node.attribute else None
    if attr is None or attr.name != "value" or tuple(attr.t.dims) != table.shape:
        return False
    return np.array_equal(numpy_helper.to_array(attr.t), table)
