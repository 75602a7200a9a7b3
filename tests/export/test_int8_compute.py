"""``--compute int8``: the encoder's Linears as DynamicQuantizeMatMul on weights that onnxruntime
requantizes per channel when it loads the graph, the file keeping the recipe's packed codes."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from asrquant.export.int8_matmul import OP, replace_linears_int8, requantize_per_channel
from asrquant.export.matmulnbits import pack
from asrquant.quant.qtensor import dequantize
from asrquant.quant.recipe import parse_recipe
from asrquant.quant.rtn import rtn
from asrquant.quant.scheme import QuantScheme

from onnx_fixtures import export, small_checkpoint

LINEAR = "lin"


def linear_graph(w_kn: np.ndarray) -> onnx.ModelProto:
    """y = x @ lin.weight_t, the traced Linear's pattern."""
    k, n = w_kn.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", f"{LINEAR}.weight_t"], ["y"], name="/lin/MatMul")], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "t", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "t", n])],
        [numpy_helper.from_array(w_kn, f"{LINEAR}.weight_t")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def load_folded(proto: onnx.ModelProto, tmp_path) -> tuple[ort.InferenceSession, onnx.ModelProto]:
    """The session, and the graph as onnxruntime optimized it when loading (basic level: folding)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess, onnx.load(so.optimized_model_filepath)


def folded_weight(optimized: onnx.ModelProto) -> tuple[np.ndarray, np.ndarray]:
    (node,) = optimized.graph.node
    assert node.op_type == OP  # the whole dequantize + requantize chain was folded at load
    inits = {t.name: numpy_helper.to_array(t) for t in optimized.graph.initializer}
    return inits[node.input[1]], inits[node.input[2]]


@pytest.mark.parametrize("bits,group,symmetric", [(4, 64, False), (4, 32, True), (8, -1, True), (2, 16, False), (4, 64, True)])
def test_packed_weight_is_requantized_per_channel_at_load(bits, group, symmetric, tmp_path):
    torch.manual_seed(bits * 10 + max(group, 0))
    w = torch.randn(48, 96)  # [out, in]; with groups of 64 the last block is zero-padded
    qw = rtn(w, QuantScheme.int(bits, group, symmetric, scale_dtype="float16"))
    proto = linear_graph(w.t().numpy().copy())
    assert replace_linears_int8(proto, {LINEAR: pack(qw, LINEAR)}) == [LINEAR]
    onnx.checker.check_model(proto)
    assert f"{LINEAR}.weight_t" not in {t.name for t in proto.graph.initializer}  # only the packed codes are stored
    sess, optimized = load_folded(proto, tmp_path)
    w8, scale = folded_weight(optimized)
    deq = dequantize(qw).numpy()
    ref_w8, ref_scale = requantize_per_channel(deq.T)
    assert np.array_equal(w8, ref_w8) and np.array_equal(scale.view(np.uint32), ref_scale.view(np.uint32))
    x = np.random.default_rng(0).standard_normal((2, 5, 96)).astype(np.float32)
    (y,) = sess.run(None, {"x": x})
    ref = x @ deq.T
    # int8 activations (one scale per tensor) and weights: ~1% of the output's range
    assert np.abs(y - ref).max() < 0.03 * np.abs(ref).max()


def test_requantizing_an_int8_per_channel_weight_changes_nothing():
    w = torch.randn(16, 64)
    qw = rtn(w, QuantScheme.int(8, -1, True))
    deq = dequantize(qw).numpy()
    w8, scale = requantize_per_channel(deq.T)
    np.testing.assert_allclose(w8.astype(np.float32) * scale, deq.T, rtol=1e-6)


def test_float_linear_runs_int8_too(tmp_path):
    w = np.random.default_rng(1).standard_normal((32, 24)).astype(np.float32)
    proto = linear_graph(w)
    assert replace_linears_int8(proto, {}) == [LINEAR]
    sess, optimized = load_folded(proto, tmp_path)
    w8, scale = folded_weight(optimized)
    ref_w8, ref_scale = requantize_per_channel(w)
    assert np.array_equal(w8, ref_w8) and np.array_equal(scale, ref_scale)
    x = np.random.default_rng(2).standard_normal((1, 3, 32)).astype(np.float32)
    (y,) = sess.run(None, {"x": x})
    assert np.abs(y - x @ w).max() < 0.03 * np.abs(x @ w).max()


ENCODER_AND_DECODER_INT4 = """
name = "all-int4"
[[rules]]
match = ["*"]
bits = 4
group_size = 32
symmetric = false
scale_dtype = "float16"
"""


@pytest.fixture(scope="module")
def int8_variant(tmp_path_factory):
    from asrquant.calibrate import quantize_model

    out = tmp_path_factory.mktemp("int8") / "art"
    ckpt = small_checkpoint()
    export(ckpt, out)
    recipe = parse_recipe(ENCODER_AND_DECODER_INT4)
    quantize_model(ckpt.model, recipe, None, progress=False)
    export(ckpt, out, recipe=recipe, variant="int4")
    export(ckpt, out, recipe=recipe, variant="int4-i8", compute="int8")
    return out


def test_encoder_graph_runs_int8_and_decoders_matmulnbits_at_level_4(int8_variant):
    out = int8_variant
    enc = onnx.load(str(out / "encoder.int4-i8.onnx"), load_external_data=False)
    ops = [n.op_type for n in enc.graph.node]
    assert ops.count(OP) == 2 * 6 + 2 * 2 and "MatMulNBits" not in ops  # 6 per block + cross k/v per decoder layer
    step = onnx.load(str(out / "decoder_step.int4-i8.onnx"), load_external_data=False)
    levels = {helper.get_attribute_value(a) for n in step.graph.node if n.op_type == "MatMulNBits"
              for a in n.attribute if a.name == "accuracy_level"}
    assert levels == {4}
    m = json.loads((out / "manifest.json").read_text())["variants"]["int4-i8"]
    assert m["compute"] == "int8"
    assert m["tensors"]["encoder.blocks.0.mlp.fc1"]["op"].startswith(OP)
    assert m["tensors"]["decoder.blocks.0.mlp.fc1"]["op"] == "MatMulNBits"
    # the same packed 4-bit codes on disk: the encoder's weights file is no larger
    size = {v: (out / f"encoder.{v}.onnx.data").stat().st_size for v in ("int4", "int4-i8")}
    assert size["int4-i8"] <= size["int4"]


def test_int8_encoder_stays_close_to_the_float_compute_one(int8_variant):
    from asrquant.runtime.onnx_whisper import open_onnx_artifact  # noqa: F401  (the runner reads this variant)

    out = int8_variant
    mel = np.random.default_rng(0).standard_normal((1, 80, 3000)).astype(np.float32)
    outs = {}
    for v in ("int4", "int4-i8"):
        sess = ort.InferenceSession(str(out / f"encoder.{v}.onnx"), providers=["CPUExecutionProvider"])
        outs[v] = sess.run(None, {sess.get_inputs()[0].name: mel})[0]
    a, b = outs["int4"].ravel(), outs["int4-i8"].ravel()
    cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert cosine > 0.99, cosine
    transcriber, _ = open_onnx_artifact(out, variant="int4-i8")
    assert transcriber is not None
