"""The int8 GEMM weights' signedness picked per CPU at load (asrquant.runtime.int8_weights): u8 x u8 as
exported, u8 x s8 where VNNI / AMX make it exact; the same integers either way."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from asrquant.cpu import cpu_info
from asrquant.errors import AsrQuantError
from asrquant.export.onnx.int8_matmul import OP, as_uint8, replace_linears_int8
from asrquant.runtime import int8_weights
from asrquant.runtime.int8_weights import ENV, as_graph_takes, open_graph, signed_int8
from asrquant.runtime.signed_graph import ZERO_S8, to_signed

VNNI = any(f in cpu_info()["features"] for f in int8_weights.SIGNED_ON)


@pytest.mark.parametrize("features,signed", [(["AVX2"], False), (["AVX2", "AVX512", "AVX512-VNNI"], True),
                                             (["AVX2", "AVX-VNNI"], True), (["AVX2", "AMX"], True),
                                             (["NEON dot product"], False), ([], False)])
def test_the_cpu_decides_unless_overridden(monkeypatch, features, signed):
    monkeypatch.delenv(ENV, raising=False)
    assert signed_int8(features) is signed
    monkeypatch.setenv(ENV, "u8")
    assert signed_int8(features) is False
    monkeypatch.setenv(ENV, "S8")
    assert signed_int8(features) is True
    monkeypatch.setenv(ENV, "int8")
    with pytest.raises(AsrQuantError, match="variable ASRQUANT_INT8_WEIGHTS='int8': expected auto, u8 or s8"):
        signed_int8(features)


def small_code_graph(k=64, n=24, seed=0) -> tuple[onnx.ModelProto, np.ndarray]:
    """x @ w through the exporter's int8 chain, the weight's codes within +-60: a pair of u8 x s8
    products (255 * 60 * 2) fits in 16 bits, so even AVX2's saturating kernel is exact and any CPU
    can compare the two signednesses."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-60, 61, (k, n)).astype(np.float32) * np.float32(0.01)
    w[0] = 0.6  # every channel's largest |w|: the per-channel scale is 0.01 and the codes are w / 0.01
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "lin.weight_t"], ["y"], name="/lin/MatMul")], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["t", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["t", n])],
        [numpy_helper.from_array(w, "lin.weight_t")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    replace_linears_int8(proto, {})  # float weight -> stored int8 (as uint8 + 128)
    return proto, rng.standard_normal((50, k)).astype(np.float32)


def run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_a_stored_weight_becomes_its_codes_with_zero_point_0_and_the_product_is_the_same():
    proto, x = small_code_graph()
    before = run(proto, x)
    held = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}["lin.weight_int8"]
    assert held.dtype == np.uint8
    signed = onnx.ModelProto()
    signed.CopyFrom(proto)
    assert to_signed(signed) == 1
    onnx.checker.check_model(signed)
    inits = {t.name: numpy_helper.to_array(t) for t in signed.graph.initializer}
    assert inits["lin.weight_int8"].dtype == np.int8
    assert np.array_equal(inits["lin.weight_int8"].astype(np.int16), held.astype(np.int16) - 128)
    assert inits[ZERO_S8].dtype == np.int8 and inits[ZERO_S8] == 0
    gemm = next(node for node in signed.graph.node if node.op_type == OP)
    assert gemm.input[5] == ZERO_S8 and gemm.input[4] != ZERO_S8  # the activations stay uint8 + 128
    assert np.array_equal(run(signed, x), before)
    assert to_signed(signed) == 0  # already signed: nothing left to change


def test_a_weight_taken_as_input_changes_type_and_its_load_time_value_follows():
    proto, x = small_code_graph()
    g = proto.graph
    w = next(t for t in g.initializer if t.name == "lin.weight_int8")
    held = numpy_helper.to_array(w)
    g.initializer.remove(w)  # as an encoder whose weights the encoder_weights graph computes
    g.input.append(helper.make_tensor_value_info("lin.weight_int8", TensorProto.UINT8, list(held.shape)))
    plain = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    assert as_graph_takes(plain, {"lin.weight_int8": held})["lin.weight_int8"] is held  # uint8 graph: as it is
    before = plain.run(None, {"x": x, "lin.weight_int8": held})[0]
    assert to_signed(proto) == 1
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    assert {i.name: i.type for i in sess.get_inputs()}["lin.weight_int8"] == "tensor(int8)"
    given = held.copy()
    feeds = as_graph_takes(sess, {"lin.weight_int8": given, "other": np.zeros(3, np.uint8)})
    assert np.shares_memory(feeds["lin.weight_int8"], given)  # turned in place: no second copy at load
    assert feeds["lin.weight_int8"].dtype == np.int8 and feeds["other"].dtype == np.uint8
    assert np.array_equal(feeds["lin.weight_int8"].astype(np.int16), held.astype(np.int16) - 128)
    assert np.array_equal(sess.run(None, {"x": x, "lin.weight_int8": feeds["lin.weight_int8"]})[0], before)


def test_a_gemm_not_in_our_layout_is_left_alone():
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, ["t", 4])
    w = numpy_helper.from_array(as_uint8(np.ones((4, 2), np.int8)), "w")
    zero = numpy_helper.from_array(np.array(0, np.uint8), "z0")  # zero point 0: not code + 128
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    node = helper.make_node(OP, ["x", "w", "one", "one", "z0", "z0"], ["y"], domain="com.microsoft")
    graph = helper.make_graph([node], "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["t", 2])],
                              [w, zero, one])
    proto = helper.make_model(graph)
    assert to_signed(proto) == 0 and [t.name for t in proto.graph.initializer] == ["w", "z0", "one"]


def test_open_graph_reads_external_data_and_follows_the_choice(tmp_path, monkeypatch):
    proto, x = small_code_graph(k=256, n=256)
    path = tmp_path / "g.onnx"
    onnx.save(proto, str(path), save_as_external_data=True, location="g.onnx.data", size_threshold=0)
    outs = {}
    for choice in ("u8", "s8"):
        monkeypatch.setenv(ENV, choice)
        sess = open_graph(path, ort.SessionOptions())
        outs[choice] = sess.run(None, {"x": x})[0]
    assert np.array_equal(outs["u8"], outs["s8"])
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a graph")
    with pytest.raises(Exception, match="bad.onnx: not a readable ONNX graph"):
        open_graph(bad, ort.SessionOptions())


@pytest.mark.skipif(not VNNI, reason="u8 x s8 is exact only with VNNI / AMX (this CPU saturates it)")
def test_on_a_vnni_cpu_the_signed_encoder_gives_the_unsigned_ones_numbers(monkeypatch, tmp_path):
    """A whole exported int8 encoder (weights expanded at load) gives the same output both ways."""
    from onnx_fixtures import export, small_checkpoint

    from asrquant.models.whisper.onnx_session import open_onnx_artifact
    from asrquant.quant.calibrate import quantize_model
    from asrquant.quant.recipe import parse_recipe

    ckpt = small_checkpoint()
    recipe = parse_recipe('name = "all-int4"\n[[rules]]\nmatch = ["*"]\nbits = 4\ngroup_size = 32\n')
    quantize_model(ckpt.model, recipe, None, progress=False)
    export(ckpt, tmp_path / "art", recipe=recipe, compute="int8")
    export(ckpt, tmp_path / "art", recipe=recipe, compute="int8", variant="int8s", attention="int8")
    mel = np.random.default_rng(0).standard_normal((80, 3000)).astype(np.float32)
    for variant in (None, "int8s"):  # the attention keys quantized at run time too (export.onnx.int8_scores)
        k = {}
        for choice in ("u8", "s8"):
            monkeypatch.setenv(ENV, choice)
            transcriber, _ = open_onnx_artifact(tmp_path / "art", variant=variant)
            k[choice] = transcriber.session.encode(mel).k
        assert np.array_equal(k["u8"], k["s8"]), variant


def test_keys_quantized_at_run_time_are_signed_and_queries_are_not(tmp_path):
    """The int8 attention scores' keys come from a QuantizeLinear (through Reshape and Transpose):
    its zero point turns int8 0, so it writes the codes themselves; the queries' stay uint8 + 128."""
    from onnx_fixtures import export, small_checkpoint

    from asrquant.models.whisper.onnx_graphs import ENCODER_QUERY_ROWS

    ckpt = small_checkpoint()
    export(ckpt, tmp_path / "art", attention="int8")
    proto = onnx.load(tmp_path / "art" / "encoder.onnx")
    gemms = [n for n in proto.graph.node if n.op_type == OP]
    assert to_signed(proto) == len(gemms) == ckpt.dims.n_audio_layer * -(-ckpt.dims.n_audio_ctx // ENCODER_QUERY_ROWS)
    quantize = {n.name: n for n in proto.graph.node if n.op_type == "QuantizeLinear"}
    keys = [n for name, n in quantize.items() if name.startswith("/int8_scores/keys")]
    queries = [n for name, n in quantize.items() if name.startswith("/int8_scores/chunk")]
    assert keys and all(n.input[2] == ZERO_S8 for n in keys)
    assert queries and all(n.input[2] != ZERO_S8 for n in queries)
    assert all(n.input[5] == ZERO_S8 and n.input[4] != ZERO_S8 for n in gemms)
    ort.InferenceSession(proto.SerializeToString())  # the types still check
