"""A quantized tied embedding in ONNX: one packed table read by the logits MatMulNBits and by
the row lookups, which dequantize exactly as our definition does."""

import copy
import json
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import export

from asrquant.errors import ModelError
from asrquant.export.onnx.matmulnbits import pack, replace_tied_embedding
from asrquant.quant.algorithms.rtn import rtn
from asrquant.quant.qtensor import dequantize
from asrquant.quant.scheme import QuantScheme

TABLE = "emb.weight"


def lookup_and_logits_graph(table: np.ndarray) -> onnx.ModelProto:
    """rows = Gather(table, tokens); logits = Gemm(hidden, table, transB=1): the traced decoder's pattern."""
    v, d = table.shape
    nodes = [helper.make_node("Gather", [TABLE, "tokens"], ["rows"], name="/lookup"),
             helper.make_node("Gemm", ["hidden", TABLE], ["logits"], name="/logits", transB=1)]
    graph = helper.make_graph(
        nodes, "tied",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["b", "t"]),
         helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["b", d])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["b", "t", d]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", v])],
        [numpy_helper.from_array(table, TABLE)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("bits,group,symmetric", [(8, -1, True), (8, 64, False), (4, 64, False), (4, 32, True),
                                                  (2, 16, False), (4, 64, True)])
def test_rows_are_our_dequantized_rows_bit_for_bit(bits, group, symmetric):
    torch.manual_seed(bits * 100 + max(group, 0))
    # 96 inputs: with groups of 64 the last MatMulNBits block is zero-padded and must be dropped.
    w = torch.randn(50, 96)
    qw = rtn(w, QuantScheme.int(bits, group, symmetric))
    proto = lookup_and_logits_graph(w.numpy())
    assert replace_tied_embedding(proto, TABLE, pack(qw, TABLE), accuracy_level=0)  # float compute: comparable
    onnx.checker.check_model(proto)
    assert TABLE not in {t.name for t in proto.graph.initializer}  # stored once, packed
    assert [n.op_type for n in proto.graph.node].count("MatMulNBits") == 1
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    tokens = np.array([[0, 7, 49], [3, 3, 12]], np.int64)
    hidden = np.random.default_rng(0).standard_normal((2, 96)).astype(np.float32)
    rows, logits = sess.run(None, {"tokens": tokens, "hidden": hidden})
    deq = dequantize(qw).numpy()
    assert np.array_equal(rows, deq[tokens])
    np.testing.assert_allclose(logits, hidden @ deq.T, rtol=1e-5, atol=1e-4)


def test_table_read_by_anything_else_is_refused():
    w = np.random.default_rng(0).standard_normal((20, 32)).astype(np.float32)
    proto = lookup_and_logits_graph(w)
    proto.graph.node.append(helper.make_node("Identity", [TABLE], ["leak"], name="/leak"))
    with pytest.raises(ModelError, match="read by a Identity"):
        replace_tied_embedding(proto, TABLE, pack(rtn(torch.from_numpy(w), QuantScheme.int(8, -1, True)), TABLE))


def test_whisper_export_packs_its_table_once(small_ckpt, tmp_path):
    from asrquant.models.whisper.onnx_session import open_onnx_artifact
    from asrquant.models.whisper.torch_session import WhisperTorchSession
    from asrquant.quant.calibrate import quantize_model
    from asrquant.quant.recipe import parse_recipe

    recipe = parse_recipe("[[rules]]\nkind = 'mlp'\nbits = 4\ngroup_size = 32\n"
                          "[embedding]\nbits = 8\ngroup_size = -1\nsymmetric = true\n")
    model = copy.deepcopy(small_ckpt.model)
    quantize_model(model, recipe, None, progress=False)
    out = export(replace(small_ckpt, model=model), tmp_path / "q", recipe=recipe)
    for graph in ("decoder_step", "decoder_prefill"):
        proto = onnx.load(out / f"{graph}.onnx", load_external_data=False)
        names = {t.name for t in proto.graph.initializer}
        assert "decoder.token_embedding.weight" not in names and "decoder.token_embedding.qweight" in names
        # Default accuracy levels: int8 activations for the 8-bit table, float compute for 4 bits.
        levels = {n.input[1]: {a.name: a.i for a in n.attribute}.get("accuracy_level", 0)
                  for n in proto.graph.node if n.op_type == "MatMulNBits"}
        assert levels.pop("decoder.token_embedding.qweight") == 4 and set(levels.values()) == {0}
    manifest = json.loads((out / "manifest.json").read_text())
    table = manifest["variants"]["default"]["tensors"]["decoder.token_embedding"]
    assert table["scheme"] == "int8-ch-sym" and table["algorithm"] == "rtn"
    # With float compute (level 0) the logits and lookups agree with the fake-quant torch decoder.
    export(replace(small_ckpt, model=model), out, recipe=recipe, variant="float-compute", accuracy_level=0)
    session = open_onnx_artifact(out, threads=1, variant="float-compute")[0].session

    mel = np.random.default_rng(1).standard_normal((80, 3000)).astype(np.float32) * 0.1
    prompt = np.array([50257, 50362], np.int64)
    ref = WhisperTorchSession(model)
    ref_logits, _ = ref.prefill(ref.encode(mel), prompt, 1)
    got_logits, _ = session.prefill(session.encode(mel), prompt, 1)
    np.testing.assert_allclose(got_logits, ref_logits, rtol=1e-4, atol=1e-3)
