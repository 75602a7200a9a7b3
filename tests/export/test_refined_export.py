"""A refined model exports unchanged: the ONNX artifact's dequantized weights are, bit for bit,
the DWQ-refined fake-quant weights, the refined token table's too."""

import numpy as np
import onnx
import pytest
from onnx_fixtures import export, needs_tiny, small_checkpoint
from test_matmulnbits import dequantize_matmulnbits

from asrquant.quant.calibrate import CalibSample, quantize_model
from asrquant.quant.qtensor import dequantize
from asrquant.quant.recipe import parse_recipe

REFINED = """
name = "decoder-int4-dwq"
[calibration]
clips = 2
[[rules]]
match = ["decoder.blocks.*.attn.*", "decoder.blocks.*.mlp.*"]
bits = 4
group_size = 32
symmetric = false
scale_dtype = "float16"
algorithm = "gptq"
refine = "dwq"
refine_options = { steps = 20 }
[embedding]
bits = 4
group_size = 32
scale_dtype = "float16"
algorithm = "gptq"
refine = "dwq"
refine_options = { level = "e2e", steps = 10 }
"""


@needs_tiny
def test_artifact_weights_are_the_refined_fake_quant_weights(tmp_path):
    ckpt = small_checkpoint(seed=3)
    rng = np.random.default_rng(0)
    samples = [CalibSample(rng.standard_normal((80, 300)).astype(np.float32),
                           rng.integers(0, 1000, size=10).astype(np.int64)) for _ in range(2)]
    out = tmp_path / "a"
    export(ckpt, out)  # the float default first, the refined variant beside it
    recipe = parse_recipe(REFINED)
    report = quantize_model(ckpt.model, recipe, samples, progress=False, device="cpu")
    if not any(l.algorithm == "gptq+dwq" for l in report.layers):
        pytest.fail("no layer kept its refinement: nothing to check")
    export(ckpt, out, recipe=recipe, variant="int4", accuracy_level=0)
    proto = onnx.load(str(out / "decoder_step.int4.onnx"))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    nodes = [n for n in proto.graph.node if n.op_type == "MatMulNBits"]
    assert len(nodes) == 2 * 6 + 1  # the Linears and the tied table's logits
    refined = 0
    for node in nodes:
        linear = node.name.split("/")[1]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        zp = inits[node.input[3]] if len(node.input) > 3 else None
        ours = dequantize_matmulnbits(inits[node.input[1]], inits[node.input[2]], zp, attrs["bits"],
                                      attrs["block_size"], attrs["K"])
        qw = ckpt.model.get_submodule(linear).qweight
        refined += qw.info.get("refined") == "dwq"
        ref = dequantize(qw).numpy()
        np.testing.assert_array_equal(ours.view(np.uint32), ref.view(np.uint32), err_msg=linear)
        np.testing.assert_array_equal(ckpt.model.get_submodule(linear).weight.numpy().view(np.uint32),
                                      ref.view(np.uint32))
    assert refined > 0
    assert ckpt.model.decoder.token_embedding.qweight.info.get("refined") == "dwq"
    assert any(n.name.split("/")[1] == "decoder.token_embedding" for n in nodes)
