"""``--compute int8``: the encoder's Linears as integer GEMMs on int8 weights per output channel
(stored, or expanded at load from the recipe's codes) and activations quantized per row at run time."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import ALL_INT4, export, small_checkpoint

from asrquant.export.onnx.artifact import float16_storage
from asrquant.export.onnx.int8_matmul import (
    AT_EXPORT,
    AT_LOAD,
    OP,
    OWN,
    replace_linears_int8,
    requantize_per_channel,
    weights_graph,
)
from asrquant.export.onnx.matmulnbits import pack
from asrquant.quant.algorithms.rtn import rtn
from asrquant.quant.qtensor import dequantize
from asrquant.quant.recipe import parse_recipe
from asrquant.quant.scheme import QuantScheme
from asrquant.runtime.onnx_layout import resolve_graph_files

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


def run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def codes(held: np.ndarray) -> np.ndarray:
    """The int8 codes of a weight held as uint8 + 128 (what the GEMM reads, see int8_matmul)."""
    assert held.dtype == np.uint8 and held.min() >= 1  # |code| <= 127
    return (held.astype(np.int16) - 128).astype(np.int8)


def stored_int8(proto: onnx.ModelProto) -> tuple[np.ndarray, np.ndarray]:
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    assert f"{LINEAR}.weight_t" not in inits  # the float weight is gone
    return codes(inits[f"{LINEAR}.weight_int8"]), inits[f"{LINEAR}.scale_int8"]


def reference(x: np.ndarray, w8: np.ndarray, w_scale: np.ndarray) -> np.ndarray:
    """The definition: activations symmetric int8 per row, integer products, both scales after."""
    s = np.maximum(np.abs(x).max(-1, keepdims=True), np.finfo(np.float32).tiny) / np.float32(127)
    xq = np.round(x / s)
    return (xq.astype(np.float64) @ w8.astype(np.float64)) * s * w_scale


@pytest.mark.parametrize("bits,group,symmetric", [(4, 64, False), (4, 32, True), (2, 16, False), (8, 32, False)])
def test_a_grouped_weight_is_requantized_per_channel_and_the_product_follows_the_definition(bits, group, symmetric):
    torch.manual_seed(bits * 10 + group)
    w = torch.randn(48, 96)  # [out, in]
    qw = rtn(w, QuantScheme.int(bits, group, symmetric, scale_dtype="float16"))
    deq = dequantize(qw).numpy()
    proto = linear_graph(deq.T.copy())  # the traced Linear holds the fake-quant weight
    assert replace_linears_int8(proto, {LINEAR: qw}) == ({LINEAR: AT_EXPORT}, {})  # not packed: stored int8
    onnx.checker.check_model(proto)
    w8, w_scale = stored_int8(proto)
    ref_w8, ref_scale = requantize_per_channel(deq.T)
    assert np.array_equal(w8, ref_w8) and np.array_equal(w_scale, ref_scale)
    x = np.random.default_rng(0).standard_normal((2, 5, 96)).astype(np.float32)
    x[0, 1] *= 30  # one loud frame: every row has its own scale
    y = run(proto, x)
    np.testing.assert_allclose(y, reference(x, w8, w_scale), rtol=1e-5, atol=1e-5 * np.abs(y).max())
    # and close to the float product: int8 rows and weights, about 1% of each row's range
    exact = x @ deq.T
    rel = np.abs(y - exact).max(-1) / np.abs(exact).max(-1)
    assert rel.max() < 0.03, rel.max()


def test_an_int8_per_channel_weight_keeps_its_own_codes():
    w = torch.randn(16, 64)
    qw = rtn(w, QuantScheme.int(8, -1, True, scale_dtype="float16"))
    deq = dequantize(qw).numpy()
    proto = linear_graph(deq.T.copy())
    assert replace_linears_int8(proto, {LINEAR: qw}, {LINEAR: pack(qw)}) == ({LINEAR: OWN}, {})
    w8, w_scale = stored_int8(proto)
    np.testing.assert_array_equal(w8.astype(np.float32).T * w_scale[:, None], deq)  # exactly the fake-quant weight


def test_float_linear_runs_int8_too():
    w = np.random.default_rng(1).standard_normal((32, 24)).astype(np.float32)
    proto = linear_graph(w)
    assert replace_linears_int8(proto, {}) == ({LINEAR: AT_EXPORT}, {})
    w8, w_scale = stored_int8(proto)
    ref_w8, ref_scale = requantize_per_channel(w)
    assert np.array_equal(w8, ref_w8) and np.array_equal(w_scale, ref_scale)
    x = np.random.default_rng(2).standard_normal((1, 3, 32)).astype(np.float32)
    assert np.abs(run(proto, x) - x @ w).max() < 0.03 * np.abs(x @ w).max()
    wide = linear_graph(np.random.default_rng(3).standard_normal((32, 600)).astype(np.float32))  # 2.4 KB of scales
    replace_linears_int8(wide, {})
    assert f"{LINEAR}.scale_int8" not in float16_storage(wide)  # not float16-exact: kept in float32


def expand(at_load, smooth=None) -> dict[str, np.ndarray]:
    graph = weights_graph(at_load, smooth)
    onnx.checker.check_model(graph)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(graph.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {})))


@pytest.mark.parametrize("bits,group,symmetric,k", [(4, 64, False, 96), (4, 32, True, 96), (8, 32, False, 96),
                                                     (4, 16, False, 40), (4, 64, False, 48)])
def test_packed_codes_are_expanded_at_load_into_the_per_channel_int8_weights(bits, group, symmetric, k):
    """The encoder_weights graph turns the recipe's codes (kept at their bits) into what
    requantize_per_channel makes of the dequantized weight: odd block counts (40 = 2.5 blocks of
    16, zero points repacked), padded last blocks (48 in one block of 64) and symmetric codes."""
    torch.manual_seed(bits + group + k)
    w = torch.randn(24, k)
    w[3] = 0  # an all-zero channel: a tiny scale, zero codes
    qw = rtn(w, QuantScheme.int(bits, group, symmetric, scale_dtype="float16"))
    deq = dequantize(qw).numpy()
    proto = linear_graph(deq.T.copy())
    stored, at_load = replace_linears_int8(proto, {LINEAR: qw}, {LINEAR: pack(qw)})
    assert stored == {LINEAR: AT_LOAD} and list(at_load) == [LINEAR]
    onnx.checker.check_model(proto)
    assert not [t for t in proto.graph.initializer if t.name.startswith(LINEAR)]  # nothing int8 stored
    weights = expand(at_load)
    ref_w8, ref_scale = requantize_per_channel(deq.T)
    np.testing.assert_array_equal(weights[f"{LINEAR}.scale_int8"], ref_scale)
    w8 = codes(weights[f"{LINEAR}.weight_int8"])
    assert w8.shape == (k, 24)
    # onnxruntime's QuantizeLinear may round a quotient a hair from .5 the other way than numpy
    assert np.abs(w8.astype(np.int16) - ref_w8).max() <= 1 and (w8 != ref_w8).mean() < 1e-3
    x = np.random.default_rng(0).standard_normal((2, 5, k)).astype(np.float32)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": x, **weights})[0]
    np.testing.assert_allclose(y, reference(x, w8, weights[f"{LINEAR}.scale_int8"]), rtol=1e-5,
                               atol=1e-5 * np.abs(y).max())




@pytest.fixture(scope="module")
def int8_variant(tmp_path_factory):
    from asrquant.quant.calibrate import quantize_model

    out = tmp_path_factory.mktemp("int8") / "art"
    ckpt = small_checkpoint()
    export(ckpt, out)
    recipe = parse_recipe(ALL_INT4)
    quantize_model(ckpt.model, recipe, None, progress=False)
    export(ckpt, out, recipe=recipe, variant="int4")
    export(ckpt, out, recipe=recipe, variant="int4-i8", compute="int8")
    return out


def test_encoder_graph_runs_int8_and_decoders_matmulnbits_at_level_4(int8_variant):
    out = int8_variant
    enc = onnx.load(str(out / "encoder.int4-i8.onnx"), load_external_data=False)
    ops = [n.op_type for n in enc.graph.node]
    # 6 per block + the cross-attention keys/values of each decoder layer; attention stays float
    assert ops.count(OP) == 2 * 6 + 2 * 2 and "MatMulNBits" not in ops and "MatMul" in ops
    step = onnx.load(str(out / "decoder_step.int4-i8.onnx"), load_external_data=False)
    levels = {helper.get_attribute_value(a) for n in step.graph.node if n.op_type == "MatMulNBits"
              for a in n.attribute if a.name == "accuracy_level"}
    assert levels == {4}
    m = json.loads((out / "manifest.json").read_text())["variants"]["int4-i8"]
    assert m["compute"] == "int8"
    assert m["tensors"]["encoder.blocks.0.mlp.fc1"]["op"].startswith(OP)
    assert m["tensors"]["encoder.blocks.0.mlp.fc1"]["stored"] == AT_LOAD
    assert m["graphs"]["encoder_weights"] == "encoder_weights.int4-i8.onnx"
    # the codes stay at the recipe's bits, in the variant's own encoder_weights files
    files = json.loads((out / "manifest.json").read_text())["files"]
    assert "encoder_weights.int4-i8.onnx.data" in files and "encoder_weights.onnx" not in files
    assert resolve_graph_files(out, "int4-i8")["encoder_weights"] == "encoder_weights.int4-i8.onnx"
    assert "encoder_weights" not in resolve_graph_files(out, "int4")  # float compute: no such graph
    assert m["tensors"]["decoder.blocks.0.mlp.fc1"]["op"] == "MatMulNBits"


def test_int8_encoder_stays_close_to_the_float_compute_one(int8_variant):
    from asrquant.models.whisper.onnx_session import open_onnx_artifact

    out = int8_variant
    mel = np.random.default_rng(0).standard_normal((1, 80, 3000)).astype(np.float32)
    outs = {}
    for v in ("int4", "int4-i8"):
        transcriber, _ = open_onnx_artifact(out, variant=v)  # the runner expands the int8 weights at load
        outs[v] = transcriber.session.encode(mel[0]).k
    a, b = outs["int4"].ravel(), outs["int4-i8"].ravel()
    cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert cosine > 0.99, cosine


def test_an_encoder_that_takes_weights_needs_its_encoder_weights_graph(int8_variant):
    from asrquant.errors import ArtifactError
    from asrquant.runtime.load_time_weights import load_time_weights

    path = int8_variant / "encoder.int4-i8.onnx"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with pytest.raises(ArtifactError, match="encoder.int4-i8.onnx: takes 32 weights as inputs"):
        load_time_weights(sess, path, {"mel"}, None)
    with pytest.raises(ArtifactError, match="encoder_weights.onnx: does not compute 32 weights"):
        other = int8_variant / "encoder_weights.onnx"  # a graph that computes none of them
        one = helper.make_node("Constant", [], ["one"], value=numpy_helper.from_array(np.ones(1, np.float32)))
        graph = helper.make_graph([one], "other", [], [helper.make_tensor_value_info("one", TensorProto.FLOAT, [1])])
        onnx.save(helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 21)]), str(other))
        try:
            load_time_weights(sess, path, {"mel"}, other)
        finally:
            other.unlink()
    plain = int8_variant / "encoder.int4.onnx"
    assert load_time_weights(ort.InferenceSession(str(plain), providers=["CPUExecutionProvider"]), plain, {"mel"},
                             None) == {}


# --- smoothing (asrquant.export.onnx.smoothing) ----------------------------------------------------


@pytest.mark.parametrize("packed", [False, True])
def test_smoothing_divides_the_inputs_and_multiplies_the_weight_rows_exactly(packed):
    """x @ W = (x / s) @ (diag(s) W) with s powers of two: the int8 weight is requantize_per_channel
    of the smoothed weight (stored at export, or expanded at load from the codes), and the graph
    computes the int8 definition on x / s."""
    torch.manual_seed(5)
    w = torch.randn(24, 64)
    qw = rtn(w, QuantScheme.int(4, 32, False, scale_dtype="float16"))
    deq = dequantize(qw).numpy()
    s = np.exp2(np.random.default_rng(0).integers(-3, 4, 64)).astype(np.float32)
    proto = linear_graph(deq.T.copy())
    stored, at_load = replace_linears_int8(proto, {LINEAR: qw}, {LINEAR: pack(qw)} if packed else None, {LINEAR: s})
    onnx.checker.check_model(proto)
    ref_w8, ref_scale = requantize_per_channel(deq.T * s[:, None])
    if packed:
        assert stored == {LINEAR: AT_LOAD}
        weights = expand(at_load, {LINEAR: s})
        w8, w_scale = codes(weights[f"{LINEAR}.weight_int8"]), weights[f"{LINEAR}.scale_int8"]
        assert np.abs(w8.astype(np.int16) - ref_w8).max() <= 1 and (w8 != ref_w8).mean() < 1e-3
        np.testing.assert_array_equal(w_scale, ref_scale)
    else:
        assert stored == {LINEAR: AT_EXPORT}
        weights = {}
        w8, w_scale = stored_int8(proto)
        assert np.array_equal(w8, ref_w8) and np.array_equal(w_scale, ref_scale)
    x = np.random.default_rng(1).standard_normal((2, 5, 64)).astype(np.float32)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": x, **weights})[0]
    np.testing.assert_allclose(y, reference(x / s, w8, w_scale), rtol=1e-5, atol=1e-5 * np.abs(y).max())


def test_smoothing_is_chosen_per_linear_and_never_raises_the_calibration_error():
    """A channel made 50 x louder after block 0's attention norm: its query/key/value are smoothed
    and their int8 error on the calibration frames drops; no Linear ends worse than unsmoothed; the
    decoder's cross-attention keys/values (computed in the encoder graph) are scored too."""
    from asrquant.export.onnx.smoothing import ALPHAS, smoothing_factors

    ckpt = small_checkpoint(seed=3)
    model = ckpt.model
    with torch.no_grad():
        model.encoder.blocks[0].attn_ln.weight[7] *= 50
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
             and (n.startswith("encoder.") or n.endswith(("cross_attn.key", "cross_attn.value")))]
    mels = [np.random.default_rng(i).standard_normal((80, 3000)).astype(np.float32) for i in range(2)]
    got = smoothing_factors(model, names, mels)
    assert set(got) == set(names) and "decoder.blocks.1.cross_attn.value" in got
    for n, s in got.items():
        assert s.error <= s.error_plain, n
        assert (s.scale is None) == (s.alpha is None) and s.alpha in (None, *ALPHAS)
        if s.scale is not None:
            assert np.array_equal(np.exp2(np.round(np.log2(s.scale))), s.scale)  # powers of two
    q = got["encoder.blocks.0.attn.query"]
    assert q.alpha is not None and q.error < 0.7 * q.error_plain, (q.error, q.error_plain)


def test_an_int8_export_calibrated_for_smoothing_records_it_and_stays_close(int8_variant):
    from asrquant.models.whisper.onnx_session import open_onnx_artifact

    ckpt = small_checkpoint()
    recipe = parse_recipe(ALL_INT4)
    from asrquant.quant.calibrate import quantize_model

    quantize_model(ckpt.model, recipe, None, progress=False)
    with torch.no_grad():
        ckpt.model.encoder.blocks[1].mlp_ln.weight[3] *= 40  # an outlier channel to smooth
    mels = [np.random.default_rng(i).standard_normal((80, 3000)).astype(np.float32) for i in range(2)]
    out = int8_variant
    export(ckpt, out, recipe=recipe, variant="int4-float-ref")
    export(ckpt, out, recipe=recipe, variant="int4-i8s", compute="int8", smooth_mels=mels,
           smooth_clips={"manifest": "test", "ids": ["a", "b"]})
    m = json.loads((out / "manifest.json").read_text())["variants"]["int4-i8s"]
    assert m["int8_smoothing"]["calibration"]["ids"] == ["a", "b"]
    fc1 = m["tensors"]["encoder.blocks.1.mlp.fc1"]["smoothing"]
    assert fc1["alpha"] is not None and fc1["calib_rel_error"] < fc1["calib_rel_error_unsmoothed"]
    assert m["int8_smoothing"]["smoothed"] >= 1
    mel = np.random.default_rng(9).standard_normal((80, 3000)).astype(np.float32)
    outs = {v: open_onnx_artifact(out, variant=v)[0].session.encode(mel).k.ravel()
            for v in ("int4-float-ref", "int4-i8s")}
    a, b = outs["int4-float-ref"], outs["int4-i8s"]
    assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > 0.99
