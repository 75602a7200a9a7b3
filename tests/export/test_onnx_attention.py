"""The encoder's self-attention as onnxruntime's fused MultiHeadAttention against the unfused graph."""

import json

import numpy as np
import pytest
from onnx_fixtures import MANIFESTS, export, needs_data, needs_tiny, noisy_tone

from asrquant.features import log_mel

onnx = pytest.importorskip("onnx")


def audio(seconds=4.0, seed=0):
    return noisy_tone(seconds, 330, seed)


def unfused_and(small_ckpt, out, variant: str, attention: str):
    """The small model exported unfused (the default variant) and with ``attention`` as ``variant``:
    (the directory, both transcribers)."""
    from asrquant.models.whisper.onnx_session import open_onnx_artifact

    export(small_ckpt, out)
    export(small_ckpt, out, variant=variant, attention=attention)
    return out, open_onnx_artifact(out, threads=1)[0], open_onnx_artifact(out, threads=1, variant=variant)[0]


@pytest.fixture(scope="module")
def both(small_ckpt, tmp_path_factory):
    return unfused_and(small_ckpt, tmp_path_factory.mktemp("attention") / "small", "fused", "fused")


def test_the_fused_variant_has_one_attention_node_per_encoder_layer_and_says_so(both, small_ckpt):
    out, _, _ = both
    graph = onnx.load(out / "encoder.fused.onnx", load_external_data=False).graph
    fused = [n for n in graph.node if n.op_type == "MultiHeadAttention" and n.domain == "com.microsoft"]
    assert len(fused) == small_ckpt.dims.n_audio_layer
    assert not any(n.op_type == "Softmax" for n in graph.node)
    variants = json.loads((out / "manifest.json").read_text())["variants"]
    assert variants["fused"]["attention"] == {"encoder": "fused"}
    assert variants["default"]["attention"] == {"encoder": "unfused"}


def test_fused_encoder_and_logits_stay_within_float_rounding_of_the_unfused(both):
    _, unfused, fused = both
    mel = log_mel(audio())
    a, b = unfused.session.encode(mel), fused.session.encode(mel)
    for x, y in ((a.k, b.k), (a.v, b.v)):
        np.testing.assert_allclose(y, x, rtol=0, atol=1e-5 * np.abs(x).max())
    prompt = np.array([50257, 50362], dtype=np.int64)
    la, _ = unfused.session.prefill(a, prompt, 1)
    lb, _ = fused.session.prefill(b, prompt, 1)
    np.testing.assert_allclose(lb, la, rtol=0, atol=1e-4 * np.abs(la).max())


def test_the_option_is_checked():
    from asrquant.export.onnx.attention import check_mode

    with pytest.raises(ValueError, match="attention must be one of"):
        check_mode("flash")


@pytest.mark.slow
@needs_tiny
@needs_data
def test_tiny_en_fused_and_unfused_give_the_same_tokens_on_vitw8(tmp_path):
    """Real weights, real clips: the fused encoder changes no token of whisper-tiny.en's greedy
    transcripts of the eight vitw8 clips."""
    from asrquant.audio import load_audio
    from asrquant.models.whisper.load import load_whisper
    from asrquant.models.whisper.onnx_session import open_onnx_artifact

    out = tmp_path / "tiny"
    ckpt = load_whisper("whisper-tiny.en")
    export(ckpt, out)
    export(ckpt, out, variant="fused", attention="fused")
    unfused, fused = open_onnx_artifact(out, threads=2)[0], open_onnx_artifact(out, threads=2, variant="fused")[0]
    clips = [json.loads(line) for line in MANIFESTS[0].read_text().splitlines() if line.strip()]
    for c in clips:
        x = load_audio(MANIFESTS[0].parent / c["audio"])
        assert fused.transcribe(x).tokens == unfused.transcribe(x).tokens, c["id"]


INT4 = """
name = "int4"
[[rules]]
format = "int"
bits = 4
group_size = 32
symmetric = false
scale_dtype = "float16"
"""


def test_a_fused_variant_of_an_int8_artifact_reads_the_default_encoder_weights(tmp_path):
    """The fused variant's encoder_weights graph equals the default's, so the writer does not write
    it again; the runner reads the one the manifest records for the variant."""
    from onnx_fixtures import small_checkpoint

    from asrquant.models.whisper.onnx_session import open_onnx_artifact
    from asrquant.quant.calibrate import quantize_model
    from asrquant.quant.recipe import parse_recipe

    ckpt = small_checkpoint()
    recipe = parse_recipe(INT4)
    quantize_model(ckpt.model, recipe, None, progress=False)
    out = tmp_path / "int8"
    export(ckpt, out, recipe=recipe, compute="int8", fp16=True)
    export(ckpt, out, recipe=recipe, compute="int8", fp16=True, variant="fused", attention="fused")
    graphs = json.loads((out / "manifest.json").read_text())["variants"]["fused"]["graphs"]
    assert graphs["encoder"] == "encoder.fused.onnx" and graphs["encoder_weights"] == "encoder_weights.onnx"
    assert not (out / "encoder_weights.fused.onnx").exists()
    mel = log_mel(audio())
    a = open_onnx_artifact(out, threads=1)[0].session.encode(mel)
    b = open_onnx_artifact(out, threads=1, variant="fused")[0].session.encode(mel)
    # int8 activations: a float difference can move a row's rounding by one step, no more
    np.testing.assert_allclose(b.k, a.k, rtol=0, atol=2e-2 * np.abs(a.k).max())
    assert float(a.k.ravel() @ b.k.ravel() / np.linalg.norm(a.k) / np.linalg.norm(b.k)) > 0.9999


@pytest.fixture(scope="module")
def int8_scores(small_ckpt, tmp_path_factory):
    return unfused_and(small_ckpt, tmp_path_factory.mktemp("int8-scores") / "small", "int8s", "int8")


def test_int8_scores_replace_every_score_product_and_nothing_else(int8_scores, small_ckpt):
    from asrquant.models.whisper.onnx_graphs import ENCODER_QUERY_ROWS

    out, _, _ = int8_scores
    graph = onnx.load(out / "encoder.int8s.onnx", load_external_data=False).graph
    producer = {o: n for n in graph.node for o in n.output}
    softmax = [n for n in graph.node if n.op_type == "Softmax"]
    chunks = -(-small_ckpt.dims.n_audio_ctx // ENCODER_QUERY_ROWS)
    assert len(softmax) == small_ckpt.dims.n_audio_layer * chunks
    assert all(producer[n.input[0]].op_type == "MatMulIntegerToFloat" for n in softmax)
    keys = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.name.startswith("/int8_scores/keys")]
    assert len(keys) == small_ckpt.dims.n_audio_layer  # once per layer, shared by its chunks
    # the probabilities' product stays float: every Softmax output feeds a float MatMul
    consumers = {i: n for n in graph.node for i in n.input}
    assert all(consumers[n.output[0]].op_type == "MatMul" for n in softmax)
    read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    assert all(any(o in read for o in n.output) for n in graph.node), "no node left computing nothing"
    variants = json.loads((out / "manifest.json").read_text())["variants"]
    assert variants["int8s"]["attention"] == {"encoder": "int8"}


def test_int8_scores_stay_close_to_the_float_scores(int8_scores):
    _, unfused, int8s = int8_scores
    mel = log_mel(audio())
    a, b = unfused.session.encode(mel), int8s.session.encode(mel)
    for x, y in ((a.k, b.k), (a.v, b.v)):
        rel = float(np.linalg.norm(y - x) / np.linalg.norm(x))
        assert 0 < rel < 0.05, rel  # not the float numbers, and within int8's error of them
    assert len(int8s.transcribe(audio()).tokens) > 0


def test_int8_scores_refuse_a_graph_without_the_traced_attention():
    from onnx import TensorProto, helper

    from asrquant.export.onnx.int8_scores import quantize_scores

    g = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    with pytest.raises(ValueError, match="not the traced Softmax"):
        quantize_scores(helper.make_model(g))
