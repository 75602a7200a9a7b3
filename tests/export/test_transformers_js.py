"""--format transformers.js: the files and names transformers.js reads, the 4-bit weights packed from
the recipe's own codes, the merged decoder equal to the torch model on both branches of
``use_cache_branch``, our Python runner over those graphs, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper
from onnx_fixtures import small_checkpoint

from asrquant.artifact import verify
from asrquant.errors import AsrQuantError
from asrquant.export.command import export_format
from asrquant.export.onnx.matmulnbits import pack
from asrquant.models.whisper.transformers_js_graphs import past_names

INT4 = '[[rules]]\nmatch = ["encoder.blocks.*", "decoder.blocks.*"]\nbits = 4\ngroup_size = 32\nsymmetric = false\n'
INT8 = '[[rules]]\nmatch = ["decoder.blocks.*"]\nbits = 8\ngroup_size = 32\nsymmetric = true\n'


def quantized_small(spec: str):
    from asrquant.quant.calibrate import quantize_model
    from asrquant.quant.recipe import parse_recipe

    ckpt = small_checkpoint()
    recipe = parse_recipe(spec, default_name="test")
    quantize_model(ckpt.model, recipe, None, progress=False)
    return ckpt, recipe


@pytest.fixture(scope="module")
def int4(tmp_path_factory):
    ckpt, recipe = quantized_small(INT4)
    out = export_format("transformers.js", ckpt, tmp_path_factory.mktemp("tjs") / "small", recipe)
    return ckpt, Path(out)


def test_layout_and_manifest(int4):
    _, out = int4
    for name in ("config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json",
                 "tokenizer_config.json", "onnx/encoder_model_q4.onnx", "onnx/decoder_model_merged_q4.onnx"):
        assert (out / name).is_file(), name
    manifest = verify(out)  # every file's sha256
    assert manifest["kind"] == "asrquant-export-transformers.js" and manifest["dtype"] == "q4"
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "whisper" and config["is_encoder_decoder"] is True
    assert config["transformers.js_config"] == {"dtype": "q4"}
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == "WhisperTokenizer"


def test_names_transformers_js_reads(int4):
    ckpt, out = int4
    n = ckpt.dims.n_text_layer
    enc = onnx.load(str(out / "onnx/encoder_model_q4.onnx"))
    assert [i.name for i in enc.graph.input] == ["input_features"]
    assert [o.name for o in enc.graph.output] == ["last_hidden_state"]
    dec = onnx.load(str(out / "onnx/decoder_model_merged_q4.onnx"))
    assert [i.name for i in dec.graph.input] == ["input_ids", "encoder_hidden_states", *past_names(n),
                                                 "use_cache_branch"]
    assert [o.name for o in dec.graph.output] == ["logits", *past_names(n, "present")]
    assert sum(node.op_type == "If" for node in dec.graph.node) == 1


def test_weights_are_the_recipe_codes(int4):
    ckpt, out = int4
    name = "encoder.blocks.0.mlp.fc1"
    expected = pack(ckpt.model.get_submodule(name).qweight, name)
    inits = {t.name: t for t in onnx.load(str(out / "onnx/encoder_model_q4.onnx")).graph.initializer}
    assert np.array_equal(numpy_helper.to_array(inits[f"{name}.qweight"]), expected.b)


def test_merged_decoder_matches_torch_on_both_branches(int4):
    ckpt, out = int4
    enc = ort.InferenceSession(str(out / "onnx/encoder_model_q4.onnx"))
    dec = ort.InferenceSession(str(out / "onnx/decoder_model_merged_q4.onnx"))
    names = [o.name for o in dec.get_outputs()]
    torch.manual_seed(0)
    mel = torch.randn(1, 80, 3000)
    tokens = [50257, 50362, 100, 200]
    with torch.no_grad():
        ref = ckpt.model.teacher_forced_logits(mel, torch.tensor([tokens])).numpy()
    hidden = enc.run(None, {"input_features": mel.numpy()})[0]
    h, dh = ckpt.dims.n_text_head, ckpt.dims.n_text_state // ckpt.dims.n_text_head
    empty = np.zeros((1, h, 0, dh), np.float32)
    feeds = {"input_ids": np.array([tokens[:3]]), "encoder_hidden_states": hidden,
             "use_cache_branch": np.array([False]), **{n: empty for n in past_names(ckpt.dims.n_text_layer)}}
    first = dict(zip(names, dec.run(None, feeds)))
    # float16 storage of the float weights: not bit-exact, close
    np.testing.assert_allclose(first["logits"][0], ref[0, :3], atol=2e-2, rtol=0)
    feeds = {"input_ids": np.array([tokens[3:]]), "encoder_hidden_states": hidden,
             "use_cache_branch": np.array([True]),
             **{n: first[n.replace("past_key_values", "present")] for n in past_names(ckpt.dims.n_text_layer)}}
    second = dict(zip(names, dec.run(None, feeds)))
    np.testing.assert_allclose(second["logits"][0, 0], ref[0, 3], atol=2e-2, rtol=0)
    assert second["present.0.decoder.key"].shape[2] == 4


def test_python_runner_opens_it(int4):
    from asrquant.engines import open_engine

    _, out = int4
    engine = open_engine(str(out))
    assert engine.engine == "asrquant-onnx-transformers.js"
    text = engine.transcribe(np.zeros(16000, np.float32), None, 1, 8)
    assert isinstance(text.text, str)


def test_refusals(tmp_path):
    ckpt, recipe = quantized_small(INT8)
    with pytest.raises(AsrQuantError, match="q4"):
        export_format("transformers.js", ckpt, tmp_path / "int8", recipe)


def test_browser_target_exists():
    from asrquant.export.targets import load_target

    target = load_target("browser")
    assert target.format == "transformers.js"


def test_ort_q4_peer(tmp_path):
    """The round-to-nearest peer: a float export through onnxruntime's MatMulNBitsQuantizer (blocks
    of 32, symmetric) in the _q4 files, every weight MatMul quantized (the cross-attention ones
    inside the If included), opened by our runner."""
    from asrquant.engines import open_engine
    from asrquant.export.transformers_js_ort import count_ops, float_weight_matmuls, write_ort_q4

    ckpt = small_checkpoint()
    fp32 = export_format("transformers.js", ckpt, tmp_path / "fp32")
    assert verify(fp32)["dtype"] == "fp32" and float_weight_matmuls(
        onnx.load(str(fp32 / "onnx/decoder_model_merged.onnx")).graph)
    out = write_ort_q4(fp32, tmp_path / "ort")
    manifest = verify(out)
    assert manifest["dtype"] == "q4" and manifest["recipe"]["block_size"] == 32 and manifest["recipe"]["symmetric"]
    assert json.loads((out / "config.json").read_text())["transformers.js_config"] == {"dtype": "q4"}
    d = ckpt.dims
    dec = onnx.load(str(out / "onnx/decoder_model_merged_q4.onnx"))
    branch = next(n for n in dec.graph.node if n.op_type == "If")
    else_branch = next(a.g for a in branch.attribute if a.name == "else_branch")
    assert count_ops(else_branch)["MatMulNBits"] == 2 * d.n_text_layer  # cross keys and values
    assert count_ops(dec.graph)["MatMulNBits"] == 10 * d.n_text_layer and not float_weight_matmuls(dec.graph)
    enc = onnx.load(str(out / "onnx/encoder_model_q4.onnx"))
    assert count_ops(enc.graph)["MatMulNBits"] == 6 * d.n_audio_layer
    engine = open_engine(str(out))
    assert engine.engine == "asrquant-onnx-transformers.js"
    assert isinstance(engine.transcribe(np.zeros(16000, np.float32), None, 1, 8).text, str)
    with pytest.raises(AsrQuantError, match="float"):
        write_ort_q4(out, tmp_path / "again")


def test_ort_q4_flag_refusals():
    from argparse import Namespace

    from asrquant.export.command import check_options

    base = dict(ggml_type=None, variant=None, fp16=False, accuracy_level=None, compute="float", attention="unfused",
                ort_q4=True)
    check_options(Namespace(format="transformers.js", recipe=None, **base))
    for fmt, recipe in (("onnx", None), ("transformers.js", "rtn-int4-g64")):
        with pytest.raises(AsrQuantError, match="--ort-q4"):
            check_options(Namespace(format=fmt, recipe=recipe, **base))
