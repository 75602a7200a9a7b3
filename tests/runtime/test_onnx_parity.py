"""Real model, real clips: the ONNX export decodes the tokens of the torch reference.

whisper-tiny.en on every clip of shared/data vitw8 + dev, greedy:
- the float32 export gives exactly the torch tokens;
- the RTN int4 g64 variant gives the tokens of the torch fake-quant model of the same recipe on
  at least 95% of the clips (the MatMulNBits kernel accumulates in another order), and the
  clips that differ are printed;
- so does a variant whose token embedding is quantized too (int4, asymmetric: the logits
  MatMulNBits and the row lookups read one packed table).
whisper-base takes longer: ``python -m asrquant.export.onnx.parity`` runs the same check (see the
module's doc).
"""

import pytest
from onnx_fixtures import MANIFESTS, needs_data, needs_tiny

from asrquant.export.onnx.parity import compare, torch_reference
from asrquant.models.whisper.onnx_session import open_onnx_artifact

pytestmark = [pytest.mark.slow, needs_tiny, needs_data]
RECIPE = "rtn-int4-g64"
EMBEDDING_RECIPE = """
name = "rtn-int4-g64-emb4"
[[rules]]
bits = 4
group_size = 64
[embedding]
bits = 4
group_size = 64
symmetric = false
"""
THREADS = 1  # on a shared, busy machine one thread per side decodes fastest (no spinning barriers)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    from asrquant.models.whisper.onnx_graphs import export_onnx
    from asrquant.quant.command import load_checkpoint as load

    out = tmp_path_factory.mktemp("tiny") / "onnx"
    ckpt, _ = load("whisper-tiny.en")
    export_onnx(ckpt, out)
    ckpt, recipe = load("whisper-tiny.en", RECIPE, progress=False)
    export_onnx(ckpt, out, recipe=recipe, variant="int4")
    (out.parent / "emb4.toml").write_text(EMBEDDING_RECIPE)
    ckpt, recipe = load("whisper-tiny.en", str(out.parent / "emb4.toml"), progress=False)
    export_onnx(ckpt, out, recipe=recipe, variant="emb4")
    return out


def test_float_export_gives_the_torch_tokens(artifact):
    onnx_side, _ = open_onnx_artifact(artifact, threads=THREADS)
    report = compare(torch_reference("whisper-tiny.en", threads=THREADS), onnx_side, [str(m) for m in MANIFESTS])
    print(report.differences())
    assert len(report.clips) == 33
    assert report.identical == len(report.clips), report.differences()


def test_int4_variant_gives_the_fake_quant_tokens(artifact):
    onnx_side, _ = open_onnx_artifact(artifact, threads=THREADS, variant="int4")
    report = compare(torch_reference("whisper-tiny.en", RECIPE, threads=THREADS), onnx_side,
                     [str(m) for m in MANIFESTS])
    print(report.differences())
    assert report.fraction >= 0.95, report.differences()


def test_quantized_embedding_variant_gives_the_fake_quant_tokens(artifact):
    onnx_side, _ = open_onnx_artifact(artifact, threads=THREADS, variant="emb4")
    recipe = str(artifact.parent / "emb4.toml")
    report = compare(torch_reference("whisper-tiny.en", recipe, threads=THREADS), onnx_side,
                     [str(m) for m in MANIFESTS])
    print(report.differences())
    assert report.fraction >= 0.95, report.differences()
