"""onnxruntime's own quantizer as a variant of a small random Whisper export: every algorithm,
GPTQ calibrated on two synthetic clips."""

import json
import shutil

import numpy as np
import onnx
import pytest
import soundfile as sf

from asrquant.errors import AsrQuantError
from asrquant.export.onnx.ort_quantizer import ALGORITHMS, add_ort_variant, check_options
from asrquant.models.whisper.onnx_session import open_onnx_artifact
from asrquant.runtime.onnx_layout import GRAPHS, graph_file

pytest.importorskip("onnx_ir")  # onnxruntime's matmul_nbits_quantizer imports it


@pytest.fixture(scope="module")
def calib_manifest(tmp_path_factory):
    """Two clips of tones in noise with reference text, one without text (the float export's
    own transcript is then used)."""
    d = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    rows = []
    for i, (hz, text) in enumerate([(220.0, "a low tone"), (660.0, "")]):
        t = np.arange(16000 * (2 + i)) / 16000
        audio = 0.3 * np.sin(2 * np.pi * hz * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(d / f"clip{i}.wav", audio.astype(np.float32), 16000)
        rows.append({"id": f"clip{i}", "audio": f"clip{i}.wav", "text": text, "lang": "en"})
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d / "manifest.jsonl"


@pytest.fixture(scope="module")
def artifact(small_artifact, tmp_path_factory):
    copy = tmp_path_factory.mktemp("ort") / "art"
    shutil.copytree(small_artifact, copy)
    return copy


def _nbits_nodes(path) -> int:
    return sum(n.op_type == "MatMulNBits" for n in onnx.load(str(path), load_external_data=False).graph.node)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_algorithm_writes_a_variant_the_runner_decodes(algorithm, artifact, calib_manifest):
    variant = f"ort-{algorithm}"
    calib = calib_manifest if algorithm == "gptq" else None
    add_ort_variant(artifact, variant, block_size=32, algorithm=algorithm, calib=calib)
    # Every Linear: 2 layers x (q, k, v, out, fc1, fc2) + the decoder's cross k/v in the encoder
    # graph; 2 layers x (self q/k/v/out, cross q/out, fc1, fc2) in each decoder graph.
    counts = {g: _nbits_nodes(artifact / graph_file(g, variant)) for g in GRAPHS}
    assert counts == {"encoder": 16, "decoder_prefill": 16, "decoder_step": 16}
    transcriber, size = open_onnx_artifact(artifact, variant=variant)
    assert size < open_onnx_artifact(artifact)[1]
    out = transcriber.transcribe(np.zeros(16000, np.float32), max_new_tokens=8)
    assert 1 <= len(out.tokens) <= 9
    info = json.loads((artifact / "manifest.json").read_text())["variants"][variant]
    assert info["recipe"]["algorithm"] == algorithm
    assert info["recipe"]["block_size"] == 32
    if algorithm == "gptq":
        assert info["calibration"]["ids"] == ["clip0", "clip1"]
        assert len(info["calibration"]["audio_sha256"]) == 2
    else:
        assert "calibration" not in info


def test_gptq_reader_feeds_match_the_graph_inputs(small_artifact, calib_manifest):
    from asrquant.export.onnx.ort_calibration import calibration_clips, graph_readers

    cal = calibration_clips(small_artifact, calib_manifest, 2)
    assert cal.clips[0].tokens[-1] == cal.clips[1].tokens[-1]  # both end with the end token
    readers = graph_readers(small_artifact, cal)
    for g in GRAPHS:
        declared = onnx.load(str(small_artifact / graph_file(g)), load_external_data=False).graph.input
        feeds = list(readers[g])
        assert len(feeds) == 2
        for feed in feeds:
            assert set(feed) == {i.name for i in declared}
            for i in declared:
                dims = [d.dim_value or None for d in i.type.tensor_type.shape.dim]
                assert feed[i.name].ndim == len(dims), (g, i.name)
                assert all(d is None or d == n for d, n in zip(dims, feed[i.name].shape)), (g, i.name)
                expected = onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
                assert feed[i.name].dtype == expected, (g, i.name)


def test_calibration_overlap_reads_an_onnx_variant(artifact, calib_manifest):
    from asrquant.bench import calibration_overlap
    from asrquant.eval.manifest import read_manifest

    if "ort-gptq" not in json.loads((artifact / "manifest.json").read_text())["variants"]:
        add_ort_variant(artifact, "ort-gptq", block_size=32, algorithm="gptq", calib=calib_manifest)
    clips = read_manifest(calib_manifest)
    assert sorted(calibration_overlap(f"{artifact}@ort-gptq", clips)) == ["clip0", "clip1"]
    assert calibration_overlap(str(artifact), clips) == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(algorithm="rtn", bits=8), "4-bit weights only"),
    (dict(algorithm="hqq", symmetric=True), "asymmetric only"),
    (dict(algorithm="hqq", accuracy_level=4), "accuracy_level"),
    (dict(algorithm="gptq"), "needs --calib"),
    (dict(algorithm="rtn", calib="m.jsonl"), "takes no calibration"),
    (dict(algorithm="awq"), "unknown algorithm"),
])
def test_options_an_algorithm_would_ignore_are_refused(kwargs, message):
    args = dict(algorithm="default", bits=4, symmetric=False, accuracy_level=0, calib=None) | kwargs
    with pytest.raises(AsrQuantError, match=message):
        check_options(**args)


def test_a_float16_export_is_refused(small_ckpt, tmp_path):
    from onnx_fixtures import export

    out = export(small_ckpt, tmp_path / "fp16", fp16=True)
    with pytest.raises(AsrQuantError, match="export without --fp16"):
        add_ort_variant(out, "ort", algorithm="rtn")


def test_onnxruntime_gptq_is_round_to_nearest_as_the_docstring_says():
    """A canary for the module docstring: onnxruntime's bundled GPTQ reads the zero half of the
    Cholesky factor, so it compensates no rounding error. When a release fixes it, this fails:
    update the docstring (and the measurement)."""
    from onnxruntime.quantization.neural_compressor.weight_only import gptq

    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 128)) @ (np.eye(128) + 0.3 * rng.standard_normal((128, 128)))
    w = rng.standard_normal((128, 64))
    h = 2 / len(x) * x.T @ x
    q = gptq(w.copy(), h, num_bits=4, group_size=32, blocksize=64)

    groups = w.reshape(4, 32, 64)  # the same per-group grid, rounded to nearest
    lo, hi = np.minimum(groups.min(1, keepdims=True), 0), np.maximum(groups.max(1, keepdims=True), 0)
    scale = (hi - lo) / 15
    zero = np.round(-lo / scale)
    rtn = (scale * (np.clip(np.round(groups / scale) + zero, 0, 15) - zero)).reshape(w.shape)
    np.testing.assert_allclose(q, rtn, atol=1e-12)
