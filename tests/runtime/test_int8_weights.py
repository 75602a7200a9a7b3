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


# --- signed twins written at export (asrquant.export.onnx.artifact, asrquant.runtime.onnx_layout) --------------


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """A default export whose encoder's int8 weights are stored (float weights requantized at export),
    a variant sharing that encoder (decoder-only recipe), and one whose int8 weights are computed at
    load, its attention keys quantized at run time."""
    from onnx_fixtures import ALL_INT4, DECODER_ONLY_INT4, export, needs_tiny, small_checkpoint

    from asrquant.quant.calibrate import quantize_model
    from asrquant.quant.recipe import parse_recipe

    if needs_tiny.args[0]:
        pytest.skip(needs_tiny.kwargs["reason"])
    out = tmp_path_factory.mktemp("twins") / "art"
    export(small_checkpoint(), out, compute="int8")
    for variant, text, attention in (("dec4", DECODER_ONLY_INT4, "unfused"), ("i4s", ALL_INT4, "int8")):
        ckpt, recipe = small_checkpoint(), parse_recipe(text)
        quantize_model(ckpt.model, recipe, None, progress=False)
        export(ckpt, out, recipe=recipe, variant=variant, compute="int8", attention=attention)
    return out


def initializers(path) -> dict:
    """name -> (dtype, shape, bytes) of a graph file's initializers, its external data read."""
    proto = onnx.load(str(path))
    return {t.name: (a.dtype, a.shape, a.tobytes()) for t in proto.graph.initializer
            for a in [numpy_helper.to_array(t)]}


def external_locations(path) -> dict[str, tuple[str, str, str]]:
    proto = onnx.load(str(path), load_external_data=False)
    return {t.name: tuple(e.value for e in t.external_data if e.key in ("location", "offset", "length"))
            for t in proto.graph.initializer if t.data_location == TensorProto.EXTERNAL}


def test_each_int8_graph_gets_a_signed_twin_recorded_and_listed_in_the_manifest(twins):
    import json

    from asrquant.artifact import verify

    m = verify(twins)
    records = {name: v.get("signed_graphs") for name, v in m["variants"].items()}
    assert records == {"default": {"encoder": "encoder+s8.onnx"}, "dec4": {"encoder": "encoder+s8.onnx"},
                       "i4s": {"encoder": "encoder.i4s+s8.onnx"}}  # dec4's encoder is the default's, and its twin
    assert json.loads((twins / "manifest.json").read_text())["variants"]["dec4"]["graphs"]["encoder"] == "encoder.onnx"
    names = {p.name for p in twins.iterdir()}
    # the default stores its int8 weights: their signed bytes live in the twin's own file; the
    # weights of i4s come at load (graph inputs), so its twin stores nothing of its own
    assert {n for n in names if "+" in n} == {"encoder+s8.onnx", "encoder+s8.onnx.data", "encoder.i4s+s8.onnx"}
    assert {n for n in names if "+" in n} <= set(m["files"])  # each with its sha256, checked at open


@pytest.mark.parametrize("variant,graph,twin", [("default", "encoder.onnx", "encoder+s8.onnx"),
                                                ("i4s", "encoder.i4s.onnx", "encoder.i4s+s8.onnx")])
def test_a_twin_is_the_in_memory_edit_of_its_graph_and_shares_its_weights(twins, variant, graph, twin):
    edited = onnx.load(str(twins / graph))
    assert to_signed(edited) > 0
    ours = onnx.load(str(twins / twin))
    for field in ("node", "input", "output"):
        assert [x.SerializeToString() for x in getattr(ours.graph, field)] == \
            [x.SerializeToString() for x in getattr(edited.graph, field)], field
    expected = {t.name: (a.dtype, a.shape, a.tobytes()) for t in edited.graph.initializer
                for a in [numpy_helper.to_array(t)]}
    assert initializers(twins / twin) == expected
    theirs, mine = external_locations(twins / graph), external_locations(twins / twin)
    changed = {name for name, (loc, _, _) in mine.items() if loc != theirs.get(name, ("",))[0]}
    # every tensor the edit left alone is read from the graph's own file, at the same place
    assert all(mine[n] == theirs[n] for n in set(mine) - changed)
    assert changed == {n for n in theirs if n.endswith(".weight_int8")}  # only the stored int8 weights, if any
    assert all(mine[n][0] == "encoder+s8.onnx.data" for n in changed)
    assert (twins / twin).stat().st_size < 2 * (twins / graph).stat().st_size


def run_artifact(directory, variant: str, choice: str) -> dict:
    """In a fresh process (this one has imported onnx): open ``directory@variant`` with
    ASRQUANT_INT8_WEIGHTS=``choice``, transcribe a tone; what it ran, what it gave, whether onnx was imported."""
    import json
    import os
    import subprocess
    import sys

    code = f"""
import hashlib, json, sys
import numpy as np
from asrquant.models.whisper.onnx_session import open_onnx_artifact
t, _ = open_onnx_artifact({str(directory)!r}, variant={variant!r})
s = t.session
mel = np.random.default_rng(0).standard_normal((80, 3000)).astype(np.float32)
cross = s.encode(mel)
logits, _ = s.prefill(cross, np.array([50257, 50362], np.int64), 1)
tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(48000) / 16000) + 0.05 * np.random.default_rng(1).standard_normal(48000)
tokens = t.transcribe(tone.astype(np.float32), "en", 1, 20).tokens
print(json.dumps({{"onnx": "onnx" in sys.modules, "tokens": [int(x) for x in tokens],
                  "inputs": sorted({{i.type for i in s.encoder.get_inputs() if i.name != "mel"}}),
                  "cross": hashlib.sha256(cross.k.tobytes() + cross.v.tobytes()).hexdigest(),
                  "logits": hashlib.sha256(logits.tobytes()).hexdigest()}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, ENV: choice})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def without_twin_records(src, dst):
    """A copy of the artifact at ``src`` as a writer before twins left it: no "signed_graphs" records
    (the twin files stay, listed, unused)."""
    import json
    import shutil

    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    for v in m["variants"].values():
        v.pop("signed_graphs", None)
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


@pytest.mark.parametrize("variant", ["default", "i4s"])
def test_signed_runs_open_the_twin_without_onnx_and_give_the_in_memory_edits_numbers(twins, tmp_path, variant):
    """The same integers through the same kernel: bit for bit on any CPU (``s8`` forced)."""
    twin = run_artifact(twins, variant, "s8")
    assert twin["onnx"] is False  # the twin opens from its file: no onnx import, no graph edit
    old = run_artifact(without_twin_records(twins, tmp_path / "old"), variant, "s8")
    assert old["onnx"] is True  # an artifact written before twins: signed in memory, as before
    assert twin == {**old, "onnx": False}
    assert twin["tokens"]
    if variant == "i4s":
        assert "tensor(int8)" in twin["inputs"] and "tensor(uint8)" not in twin["inputs"]  # load-time weights as codes
        unsigned = run_artifact(twins, variant, "u8")  # the graph as exported
        assert unsigned["onnx"] is False
        assert "tensor(uint8)" in unsigned["inputs"] and "tensor(int8)" not in unsigned["inputs"]


def test_a_variant_exported_again_replaces_its_twins_and_a_pre_twin_default_is_respected(twins, tmp_path):
    from onnx_fixtures import ALL_INT4, DECODER_ONLY_INT4, export, small_checkpoint

    from asrquant.artifact import verify
    from asrquant.models.whisper.onnx_session import open_onnx_artifact
    from asrquant.quant.calibrate import quantize_model
    from asrquant.quant.recipe import parse_recipe

    copy = without_twin_records(twins, tmp_path / "art")
    ckpt, recipe = small_checkpoint(), parse_recipe(ALL_INT4)
    quantize_model(ckpt.model, recipe, None, progress=False)
    export(ckpt, copy, recipe=recipe, variant="i4s")  # float compute now: nothing to sign
    assert not (copy / "encoder.i4s+s8.onnx").exists() and "encoder.i4s+s8.onnx" not in verify(copy)["files"]
    assert verify(copy)["variants"]["i4s"]["signed_graphs"] == {}  # known: nothing to sign
    # a variant sharing the encoder of a default written before twins cannot say whether that one
    # needs a twin: it records none, and the runner signs in memory
    ckpt, recipe = small_checkpoint(), parse_recipe(DECODER_ONLY_INT4)
    quantize_model(ckpt.model, recipe, None, progress=False)
    export(ckpt, copy, recipe=recipe, variant="dec4", compute="int8")
    assert "signed_graphs" not in verify(copy)["variants"]["dec4"]
    assert run_artifact(copy, "dec4", "s8")["onnx"] is True
    open_onnx_artifact(copy, variant="i4s")


def test_a_twin_is_checked_against_the_manifest(twins, tmp_path):
    import json
    import shutil

    from asrquant.errors import ArtifactError
    from asrquant.models.whisper.onnx_session import open_onnx_artifact

    copy = tmp_path / "art"
    shutil.copytree(twins, copy)
    data = bytearray((copy / "encoder.i4s+s8.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "encoder.i4s+s8.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"encoder\.i4s\+s8\.onnx: sha256 does not match"):
        open_onnx_artifact(copy, variant="i4s")
    shutil.copy(twins / "encoder.i4s+s8.onnx", copy / "encoder.i4s+s8.onnx")
    m = json.loads((copy / "manifest.json").read_text())
    m["variants"]["i4s"]["signed_graphs"] = {"encoder": "encoder.evil+s8.onnx"}
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match=r"encoder\.evil\+s8\.onnx: signed graph encoder .* not listed"):
        open_onnx_artifact(copy, variant="i4s")
