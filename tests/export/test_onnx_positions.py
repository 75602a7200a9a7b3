"""The encoder's sinusoidal positions computed in the graph: exact, and only where they are the formula."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from asrquant.models.whisper.model import sinusoids
from asrquant.models.whisper.onnx_positions import compute_positions_in_graph, table_rounding


def adds_table(table: np.ndarray) -> onnx.ModelProto:
    """x [n, d] -> x + table, the table a Constant node as the trace stores it."""
    n, d = table.shape
    const = helper.make_node("Constant", [], ["pos"], value=numpy_helper.from_array(table, "pos"))
    add = helper.make_node("Add", ["x", "pos"], ["y"])
    graph = helper.make_graph([const, add], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, d])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, d])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("rounding", ["float32", "float16"])
@pytest.mark.parametrize("shape", [(1500, 384), (1500, 512), (300, 64)])
def test_formula_tables_are_computed_bit_exactly(shape, rounding):
    table = sinusoids(*shape).numpy()
    if rounding == "float16":  # as the CTranslate2 files store it
        table = table.astype(np.float16).astype(np.float32)
    model = adds_table(table)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    assert compute_positions_in_graph(model, table)
    assert "Constant" not in [n.op_type for n in model.graph.node]
    stored = sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer)
    assert stored < shape[1] * 8 + 64  # the float64 timescales and four scalars, not the table
    onnx.checker.check_model(model)
    np.testing.assert_array_equal(run(model, x), x + table)


def test_rounding_is_recognized_and_a_trained_table_is_not():
    exact = sinusoids(1500, 384).numpy()
    assert table_rounding(exact) == (TensorProto.FLOAT,)
    assert table_rounding(exact.astype(np.float16).astype(np.float32)) == (
        TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.FLOAT)
    trained = exact.copy()
    trained[7, 3] += 1e-3
    assert table_rounding(trained) is None
    assert table_rounding(np.zeros((10, 7), np.float32)) is None  # odd width: not Whisper's layout


def test_a_table_that_is_not_the_formula_stays_stored():
    table = sinusoids(300, 64).numpy()
    table[0, 0] = 0.5  # a fine-tune that trained its positions
    model = adds_table(table)
    before = model.SerializeToString()
    assert not compute_positions_in_graph(model, table)
    assert model.SerializeToString() == before


def test_export_computes_the_positions(small_artifact):
    """The exported encoder of a Whisper whose table is the formula stores no [1500, d] tensor."""
    enc = onnx.load(str(small_artifact / "encoder.onnx"), load_external_data=False)
    assert "/encoder_positions/Sin" in [n.name for n in enc.graph.node]
    assert not any(tuple(t.dims)[:1] == (1500,) for t in enc.graph.initializer)
    assert not any(n.op_type == "Constant" and tuple(n.attribute[0].t.dims)[:1] == (1500,) for n in enc.graph.node)
