"""The artifact: files, shared decoder weights, manifest, variants with fallback, refusal on tamper."""

import json

import numpy as np
import onnx
import pytest
from onnx_fixtures import DECODER_ONLY_INT4, export, small_checkpoint
from test_matmulnbits import dequantize_matmulnbits

from asrquant.artifact import sha256_file
from asrquant.errors import ArtifactError
from asrquant.models.whisper.onnx_session import open_onnx_artifact
from asrquant.quant.calibrate import quantize_model
from asrquant.quant.qtensor import dequantize
from asrquant.quant.recipe import parse_recipe
from asrquant.runtime.onnx_layout import resolve_graph_files


def external_refs(path):
    """name -> (location, offset, length) of every external initializer of a graph file."""
    proto = onnx.load(str(path), load_external_data=False)
    refs = {}
    for t in proto.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            d = {e.key: e.value for e in t.external_data}
            refs[t.name] = (d["location"], int(d["offset"]), int(d["length"]))
    return refs


def test_layout_and_manifest(small_artifact, small_ckpt):
    names = {p.name for p in small_artifact.iterdir()}
    assert {"encoder.onnx", "encoder.onnx.data", "decoder_prefill.onnx", "decoder_step.onnx", "decoder.onnx.data",
            "config.json", "tokenizer.json", "manifest.json"} == names
    m = json.loads((small_artifact / "manifest.json").read_text())
    assert m["kind"] == "onnx" and m["source"]["sha256"] == small_ckpt.source_sha256
    assert set(m["files"]) == names - {"manifest.json"}
    for name, meta in m["files"].items():
        assert sha256_file(small_artifact / name) == meta["sha256"]
    default = m["variants"]["default"]
    assert default["recipe"] is None
    assert default["tensors"]["decoder.blocks.0.mlp.fc1"]["scheme"] == "float32"
    config = json.loads((small_artifact / "config.json").read_text())
    assert config["dims"]["n_text_layer"] == 2 and config["multilingual"] is False


def test_decoder_weights_are_stored_once_for_both_graphs(small_artifact):
    prefill = external_refs(small_artifact / "decoder_prefill.onnx")
    step = external_refs(small_artifact / "decoder_step.onnx")
    shared = set(prefill) & set(step)
    assert "decoder.token_embedding.weight" in shared and "decoder.blocks.1.mlp.fc2.weight_t" in shared
    assert all(prefill[n] == step[n] for n in shared)  # same file, offset, length
    assert {loc for loc, _, _ in prefill.values()} == {"decoder.onnx.data"}
    data = (small_artifact / "decoder.onnx.data").stat().st_size
    assert data < 1.01 * sum(length for _, _, length in {**prefill, **step}.values())  # nothing twice
    assert {loc for loc, _, _ in external_refs(small_artifact / "encoder.onnx").values()} == {"encoder.onnx.data"}


def test_graph_inputs_and_outputs(small_artifact):
    step = onnx.load(str(small_artifact / "decoder_step.onnx"), load_external_data=False)
    names = [i.name for i in step.graph.input]
    assert names[:2] == ["tokens", "position"] and "past_k_1" in names and "cross_v_1" in names
    assert [o.name for o in step.graph.output] == ["logits", "new_k", "new_v"]
    enc = onnx.load(str(small_artifact / "encoder.onnx"), load_external_data=False)
    assert [o.name for o in enc.graph.output] == ["cross_k", "cross_v"]


@pytest.fixture(scope="module")
def with_variant(tmp_path_factory):
    """A default export plus variant int4 that quantizes the decoder only."""
    out = tmp_path_factory.mktemp("variant") / "art"
    ckpt = small_checkpoint()
    export(ckpt, out)
    recipe = parse_recipe(DECODER_ONLY_INT4)
    quantize_model(ckpt.model, recipe, None, progress=False)
    export(ckpt, out, recipe=recipe, variant="int4", accuracy_level=0)
    return out, ckpt


def test_variant_lives_beside_and_shares_unchanged_files(with_variant):
    out, _ = with_variant
    assert (out / "decoder_step.int4.onnx").is_file() and (out / "decoder.int4.onnx.data").is_file()
    assert not (out / "encoder.int4.onnx").exists()  # the recipe left the encoder alone
    assert resolve_graph_files(out, "int4") == {"encoder": "encoder.onnx",
                                                "decoder_prefill": "decoder_prefill.int4.onnx",
                                                "decoder_step": "decoder_step.int4.onnx"}
    m = json.loads((out / "manifest.json").read_text())
    assert set(m["variants"]) == {"default", "int4"}
    t = m["variants"]["int4"]["tensors"]
    assert t["decoder.blocks.0.attn.query"]["op"] == "MatMulNBits" and t["decoder.blocks.0.attn.query"]["bits"] == 4
    assert t["encoder.blocks.0.attn.query"]["scheme"] == "float32"
    assert m["variants"]["int4"]["recipe"]["name"] == "decoder-int4"
    _, size_default = open_onnx_artifact(out)
    _, size_int4 = open_onnx_artifact(out, variant="int4")
    assert size_int4 < size_default


def test_variant_weights_dequantize_to_the_fake_quant_weights(with_variant):
    out, ckpt = with_variant
    proto = onnx.load(str(out / "decoder_step.int4.onnx"))  # with its external data
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    nodes = [n for n in proto.graph.node if n.op_type == "MatMulNBits"]
    assert len(nodes) == 2 * 6  # per layer: query, key, value, out of self-attention, fc1, fc2
    for node in nodes:
        linear = node.name.split("/")[1]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        zp = inits[node.input[3]] if len(node.input) > 3 else None
        ours = dequantize_matmulnbits(inits[node.input[1]], inits[node.input[2]], zp, attrs["bits"],
                                      attrs["block_size"], attrs["K"])
        ref = dequantize(ckpt.model.get_submodule(linear).qweight).numpy()
        np.testing.assert_array_equal(ours.view(np.uint32), ref.view(np.uint32), err_msg=linear)


def test_unknown_variant_is_refused(with_variant):
    out, _ = with_variant
    with pytest.raises(ArtifactError, match="no variant 'int3'.*default, int4"):
        open_onnx_artifact(out, variant="int3")


def test_variant_from_another_model_is_refused(with_variant, tmp_path):
    out, _ = with_variant
    other = small_checkpoint(seed=1)
    with pytest.raises(ArtifactError, match="another model"):
        export(other, out, variant="x")


@pytest.mark.parametrize("victim", ["decoder.onnx.data", "decoder_step.onnx", "config.json"])
def test_tampered_file_is_refused_by_name(small_artifact, tmp_path, victim):
    import shutil

    copy = tmp_path / "art"
    shutil.copytree(small_artifact, copy)
    data = bytearray((copy / victim).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / victim).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=victim.replace(".", r"\.")):
        open_onnx_artifact(copy)


def test_graph_not_in_the_manifest_is_refused(small_artifact, tmp_path):
    import shutil

    copy = tmp_path / "art"
    shutil.copytree(small_artifact, copy)
    shutil.copy(copy / "decoder_step.onnx", copy / "decoder_step.evil.onnx")
    m = json.loads((copy / "manifest.json").read_text())
    # without the writer's record of its graphs, the variant's files are found by name: refused
    m["variants"]["evil"] = {k: v for k, v in m["variants"]["default"].items() if k != "graphs"}
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match=r"decoder_step\.evil\.onnx.*not listed"):
        open_onnx_artifact(copy, variant="evil")
    # with it, only the recorded (listed, verified) files are read
    m["variants"]["evil"] = m["variants"]["default"]
    (copy / "manifest.json").write_text(json.dumps(m))
    assert open_onnx_artifact(copy, variant="evil")[1] == open_onnx_artifact(copy)[1]


def test_fp16_storage_halves_the_float_weights(small_ckpt, small_artifact, tmp_path):
    out = export(small_ckpt, tmp_path / "fp16", fp16=True)
    half = (out / "decoder.onnx.data").stat().st_size
    full = (small_artifact / "decoder.onnx.data").stat().st_size
    assert half < 0.55 * full
    m = json.loads((out / "manifest.json").read_text())
    assert m["variants"]["default"]["tensors"]["*"]["scheme"] == "float16"
    open_onnx_artifact(out)  # onnxruntime loads it


def test_fp16_storage_keeps_float16_scales_exact_and_float32_ones_as_they_are(tmp_path):
    ckpt = small_checkpoint()
    recipe = parse_recipe(DECODER_ONLY_INT4.replace("symmetric = false",
                                                    "symmetric = false\nscale_dtype = \"float16\""))
    quantize_model(ckpt.model, recipe, None, progress=False)
    out = export(ckpt, tmp_path / "art", recipe=recipe, fp16=True)
    proto = onnx.load(str(out / "decoder_step.onnx"))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    casts = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "Cast"}
    query = "decoder.blocks.0.mlp.fc1"  # scales [256, 2]: large enough to be stored apart (1 kB)
    assert inits[casts[f"{query}.scales"]].dtype == np.float16  # stored in half, read through a Cast
    scales = inits[casts[f"{query}.scales"]].astype(np.float32)
    node = next(n for n in proto.graph.node if n.op_type == "MatMulNBits" and n.name == f"/{query}/MatMulNBits")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    ours = dequantize_matmulnbits(inits[node.input[1]], scales, inits[node.input[3]], attrs["bits"],
                                  attrs["block_size"], attrs["K"])
    ref = dequantize(ckpt.model.get_submodule(query).qweight).numpy()
    np.testing.assert_array_equal(ours.view(np.uint32), ref.view(np.uint32))
    # float32-valued scales (the fixture's default recipe) are not rounded to float16
    ckpt32 = small_checkpoint()
    recipe32 = parse_recipe(DECODER_ONLY_INT4)
    quantize_model(ckpt32.model, recipe32, None, progress=False)
    out32 = export(ckpt32, tmp_path / "art32", recipe=recipe32, fp16=True)
    names = {t.name for t in onnx.load(str(out32 / "decoder_step.onnx"), load_external_data=False).graph.initializer}
    assert f"{query}.scales" in names and f"{query}.scales.fp16" not in names


def test_onnxruntime_quantizer_variant(small_artifact, tmp_path):
    pytest.importorskip("onnx_ir")
    import shutil

    from asrquant.export.onnx.ort_quantizer import add_ort_variant

    copy = tmp_path / "art"
    shutil.copytree(small_artifact, copy)
    add_ort_variant(copy, "ort-int4", block_size=32)
    step = onnx.load(str(copy / "decoder_step.ort-int4.onnx"), load_external_data=False)
    assert sum(n.op_type == "MatMulNBits" for n in step.graph.node) == 2 * 8  # every Linear of the step
    assert not any(n.op_type == "MatMulNBits" for n in step.graph.node if n.output[0] == "logits")
    transcriber, size = open_onnx_artifact(copy, variant="ort-int4")
    assert size < open_onnx_artifact(copy)[1]
    m = json.loads((copy / "manifest.json").read_text())
    assert m["variants"]["ort-int4"]["recipe"]["tool"] == "onnxruntime MatMulNBitsQuantizer"
