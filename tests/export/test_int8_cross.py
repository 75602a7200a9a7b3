"""The decoder's cross-attention keys as int8 codes (asrquant.export.onnx.int8_cross) against the
float keys of the same model."""

import json

import numpy as np
import pytest
from onnx_fixtures import export, noisy_tone

from asrquant.cpu import cpu_info
from asrquant.features import log_mel
from asrquant.runtime.int8_weights import ENV, SIGNED_ON

onnx = pytest.importorskip("onnx")
VNNI = any(f in cpu_info()["features"] for f in SIGNED_ON)
PROMPT = np.array([50257, 50362], np.int64)  # tiny.en's <|startoftranscript|> <|notimestamps|>


def mels(n=2):
    return [log_mel(noisy_tone(4.0 + i, 330 + 110 * i, seed=i)) for i in range(n)]


@pytest.fixture(scope="module")
def keys(small_ckpt, tmp_path_factory):
    """The small model exported with float keys (default) and int8 keys (variant ``xk``)."""
    out = tmp_path_factory.mktemp("int8-cross") / "small"
    export(small_ckpt, out)
    export(small_ckpt, out, variant="xk", cross_keys="int8")
    return out


def opened(out, variant=None):
    from asrquant.models.whisper.onnx_session import open_onnx_artifact

    return open_onnx_artifact(out, threads=1, variant=variant)[0]


def first_logits(transcriber, mel, batch=1):
    """The prompt's logits and the next step's, for ``batch`` rows fed different tokens."""
    session = transcriber.session
    enc = session.encode(mel)
    logits, cache = session.prefill(enc, PROMPT, batch)
    step, _ = session.step(np.arange(100, 100 + batch), cache)
    return logits, step


def test_every_layer_reads_int8_keys_through_one_integer_product(keys, small_ckpt):
    n = small_ckpt.dims.n_text_layer
    encoder = onnx.load(keys / "encoder.xk.onnx", load_external_data=False).graph
    outputs = {o.name: o.type.tensor_type.elem_type for o in encoder.output}
    assert outputs == {"cross_k": onnx.TensorProto.UINT8, "cross_v": onnx.TensorProto.FLOAT,
                       "cross_k_scale": onnx.TensorProto.FLOAT}
    read = {i for x in encoder.node for i in x.input} | set(outputs)
    assert all(any(o in read for o in x.output) for x in encoder.node), "no node left computing nothing"
    for graph in ("decoder_step", "decoder_prefill"):
        g = onnx.load(keys / f"{graph}.xk.onnx", load_external_data=False).graph
        inputs = {i.name: i.type.tensor_type.elem_type for i in g.input}
        readers = {f"cross_k_{i}": [x for x in g.node if f"cross_k_{i}" in x.input] for i in range(n)}
        for i in range(n):
            assert inputs[f"cross_k_{i}"] == onnx.TensorProto.UINT8 and f"cross_k_scale_{i}" in inputs
            assert [x.op_type for x in readers[f"cross_k_{i}"]] == ["MatMulIntegerToFloat"], graph
        read = {i for x in g.node for i in x.input} | {o.name for o in g.output}
        assert all(any(o in read for o in x.output) for x in g.node), "no node left computing nothing"
    variants = json.loads((keys / "manifest.json").read_text())["variants"]
    assert variants["xk"]["attention"] == {"encoder": "unfused", "cross_keys": "int8"}
    assert variants["default"]["attention"] == {"encoder": "unfused"}


def test_the_codes_are_the_float_keys_rounded_per_channel_between_their_min_and_max(keys, monkeypatch):
    """Two windows through one encoder run: each window's codes and scales are those of its own
    float keys (the other window changes nothing): per layer, head and channel over the frames,
    (k - min) / s rounded half to even, s = (max - min) / 255."""
    monkeypatch.setenv(ENV, "u8")  # the codes as the encoder writes them
    float_keys = [c.k for c in opened(keys).session.encode_batch(mels())]
    crosses = opened(keys, "xk").session.encode_batch(mels())
    for k, cross in zip(float_keys, crosses):
        lo = k.min(axis=4, keepdims=True)
        scale = (k.max(axis=4, keepdims=True) - lo) / np.float32(255)  # [L, 1, H, dh, 1]
        assert cross.k_scale.shape == k.shape[:3] + (1, k.shape[3])  # the queries' layout
        assert np.array_equal(cross.k_scale, scale.reshape(cross.k_scale.shape))
        codes = np.rint((k - lo) / scale)
        assert cross.k.dtype == np.uint8 and np.array_equal(cross.k, codes.astype(np.uint8))
        assert cross.k.min() == 0 and cross.k.max() == 255  # each channel spans the whole range


def test_the_scores_differ_from_the_float_ones_by_a_constant_per_row_and_int8_error(keys):
    """The keys' offsets and the zero point add one number per query row to its scores, which the
    Softmax ignores: the probabilities, not the scores, are close to the float ones."""
    import onnxruntime as ort

    from asrquant.export.onnx.int8_cross import quantize_decoder_scores

    rng = np.random.default_rng(0)
    h, dh, a = 2, 32, 1500
    q = rng.standard_normal((1, h, 1, dh)).astype(np.float32)
    k = (rng.standard_normal((1, h, dh, a)) + 3 * rng.standard_normal((1, h, dh, 1))).astype(np.float32)
    g = onnx.helper
    nodes = [g.make_node("Constant", [], ["c"], value=onnx.numpy_helper.from_array(np.array(dh ** -0.5, np.float32))),
             g.make_node("Mul", ["q", "c"], ["qc"]), g.make_node("MatMul", ["qc", "cross_k_0"], ["s"]),
             g.make_node("Softmax", ["s"], ["p"], axis=-1)]
    graph = g.make_graph(nodes, "g", [g.make_tensor_value_info("q", onnx.TensorProto.FLOAT, [1, h, 1, dh]),
                                      g.make_tensor_value_info("cross_k_0", onnx.TensorProto.FLOAT, [1, h, dh, a])],
                         [g.make_tensor_value_info("p", onnx.TensorProto.FLOAT, None)])
    model = g.make_model(graph, opset_imports=[g.make_opsetid("", 17)])
    ref = ort.InferenceSession(model.SerializeToString()).run(None, {"q": q, "cross_k_0": k})[0]
    assert quantize_decoder_scores(model, 1) == 1
    lo = k.min(axis=3, keepdims=True)
    scale = (k.max(axis=3, keepdims=True) - lo) / np.float32(255)
    codes = np.rint((k - lo) / scale).astype(np.uint8)
    got = ort.InferenceSession(model.SerializeToString()).run(
        None, {"q": q, "cross_k_0": codes, "cross_k_scale_0": scale.reshape(1, h, 1, dh)})[0]
    assert np.abs(got - ref).max() < 0.02 * ref.max()


def test_int8_keys_stay_close_to_the_float_keys_logits(keys):
    mel = mels(1)[0]
    ref, xk = first_logits(opened(keys), mel, batch=2), first_logits(opened(keys, "xk"), mel, batch=2)
    for a, b in zip(ref, xk):
        rel = float(np.linalg.norm(b - a) / np.linalg.norm(a))
        assert 0 < rel < 0.02, rel  # not the float numbers, and within int8's error of them
    assert len(opened(keys, "xk").transcribe(noisy_tone(4.0, 330)).tokens) > 0


@pytest.mark.skipif(not VNNI, reason="u8 x s8 is exact only with VNNI / AMX (this CPU saturates it)")
def test_on_a_vnni_cpu_the_signed_keys_give_the_unsigned_ones_numbers(keys, monkeypatch):
    mel = mels(1)[0]
    got = {}
    for choice in ("u8", "s8"):
        monkeypatch.setenv(ENV, choice)
        transcriber = opened(keys, "xk")
        assert transcriber.session.encode(mel).k.dtype == (np.int8 if choice == "s8" else np.uint8)
        got[choice] = first_logits(transcriber, mel)
    assert all(np.array_equal(a, b) for a, b in zip(got["u8"], got["s8"]))


def test_the_option_is_refused_where_it_has_no_meaning(small_ckpt, tmp_path):
    from asrquant.export.onnx.int8_cross import quantize_decoder_scores
    from asrquant.models.whisper.onnx_graphs import export_onnx

    with pytest.raises(ValueError, match="cross_keys must be one of"):
        export_onnx(small_ckpt, tmp_path / "a", cross_keys="int4")
    g = onnx.helper
    graph = g.make_graph([], "g", [], [])
    with pytest.raises(ValueError, match="no input cross_k_0"):
        quantize_decoder_scores(g.make_model(graph), 1)
    nodes = [g.make_node("Constant", [], ["c"], value=onnx.numpy_helper.from_array(np.array(0.5, np.float32))),
             g.make_node("Mul", ["q", "c"], ["qc"]), g.make_node("MatMul", ["qc", "cross_k_0"], ["s"]),
             g.make_node("Relu", ["s"], ["r"])]
    f32 = onnx.TensorProto.FLOAT
    graph = g.make_graph(nodes, "g", [g.make_tensor_value_info("q", f32, [1, 2, 1, 4]),
                                      g.make_tensor_value_info("cross_k_0", f32, [1, 2, 4, 8])],
                         [g.make_tensor_value_info("r", f32, None)])
    with pytest.raises(ValueError, match="not one Softmax"):  # a constant per row would change a Relu's output
        quantize_decoder_scores(g.make_model(graph), 1)


def test_the_command_line_takes_it_for_onnx_only(small_ckpt, tmp_path, capsys):
    from asrquant.cli import main
    from asrquant.models.whisper.load import write_hf_checkpoint

    model_dir = write_hf_checkpoint(small_ckpt, tmp_path / "hf")
    out = tmp_path / "onnx"
    assert main(["export", str(model_dir), "--out", str(out), "--cross-keys", "int8", "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["variants"]["default"]["attention"]["cross_keys"] == "int8"
    capsys.readouterr()
    assert main(["export", str(model_dir), "--out", str(tmp_path / "m"), "--format", "mlx", "--cross-keys", "int8",
                 "--quiet"]) == 2
    assert "--cross-keys is an ONNX option" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_only_an_artifact_with_int8_keys_needs_the_later_layout(small_ckpt, tmp_path):
    """A layout-2 runner reads every artifact without int8 keys; one with them says layout 3, and
    adding a float-key variant to it keeps 3."""
    out = export(small_ckpt, tmp_path / "a")
    assert json.loads((out / "manifest.json").read_text())["layout"] == 2
    export(small_ckpt, out, variant="xk", cross_keys="int8")
    assert json.loads((out / "manifest.json").read_text())["layout"] == 3
    export(small_ckpt, out, variant="again")
    assert json.loads((out / "manifest.json").read_text())["layout"] == 3
