"""``--int8-skip N``: every encoder-graph Linear's measured int8 cost, and the N costliest kept on float
compute (asrquant.export.onnx.int8_choice)."""

import copy
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import soundfile as sf
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import ALL_INT4, export, noisy_tone, small_checkpoint

from asrquant.cli import main
from asrquant.errors import AsrQuantError
from asrquant.export.onnx.int8_choice import Int8Cost, Int8Costs, choose_float, emulate_int8, measure
from asrquant.export.onnx.int8_matmul import OP, graph_linears, replace_linears_int8
from asrquant.quant.algorithms.rtn import rtn
from asrquant.quant.calibrate import CalibSample, quantize_model
from asrquant.quant.linear import QuantLinear
from asrquant.quant.recipe import parse_recipe
from asrquant.quant.scheme import QuantScheme

LOUD = "encoder.blocks.1.mlp.fc1"  # fed a channel made loud: per-row int8 rounding drowns the others


def quantized_pair(seed: int = 0):
    """(fake-quant checkpoint, its float model) of the small random Whisper, block 1's MLP input
    given one channel 60 x louder in both, and the decoder made to listen to the encoder (a random
    model's cross-attention averages its frames away: no KL to measure)."""
    ckpt = small_checkpoint(seed)
    with torch.no_grad():
        ckpt.model.encoder.blocks[1].mlp_ln.weight[5] *= 60
        ckpt.model.decoder.ln.weight *= 2
        for block in ckpt.model.decoder.blocks:
            block.cross_attn.out.weight *= 100
    float_model = copy.deepcopy(ckpt.model)
    quantize_model(ckpt.model, parse_recipe(ALL_INT4), None, progress=False)
    return ckpt, float_model


def samples(ckpt, n: int = 2) -> list[CalibSample]:
    from asrquant.features import log_mel
    from asrquant.models.whisper.tokenizer import WhisperTokenizer

    tok = WhisperTokenizer(ckpt.tokenizer_json, ckpt.multilingual)
    text = [" the cat sat on the mat", " hello world, how are you"]
    return [CalibSample(log_mel(noisy_tone(2.0, 300 + 100 * i, seed=i)),
                        np.asarray(tok.prompt(None) + tok.encode(text[i % 2]) + [tok.eot], np.int64))
            for i in range(n)]


@pytest.fixture(scope="module")
def measured():
    ckpt, float_model = quantized_pair()
    names = [n for n, m in ckpt.model.named_modules() if isinstance(m, QuantLinear)
             and (n.startswith("encoder.") or n.endswith(("cross_attn.key", "cross_attn.value")))]
    return ckpt, float_model, names, measure(ckpt.model, names, samples(ckpt), {"ids": ["a", "b"]}, float_model)


def test_every_encoder_graph_linear_gets_a_cost_and_the_loud_one_is_costliest(measured):
    ckpt, _, names, costs = measured
    assert list(costs.by_linear) == names and len(names) == 2 * 6 + 2 * 2  # cross keys/values too
    by = costs.by_linear
    assert all(c.kl_to_fake_quant > -1e-6 for c in by.values())  # >= 0 but for float32 sums over the vocabulary
    assert costs.kl_fake_quant > 0
    top = max(by, key=lambda n: by[n].kl_increase)
    assert top == LOUD, {n: c.kl_increase for n, c in by.items()}
    assert choose_float(costs, 1, names) == {LOUD}


def test_costs_need_the_float_model_when_the_model_is_quantized(measured):
    ckpt, _, names, _ = measured
    with pytest.raises(AsrQuantError, match="float model"):
        measure(ckpt.model, names[:1], samples(ckpt, 1))


def test_the_emulated_chain_is_the_exported_one():
    """emulate_int8 on a QuantLinear computes what replace_linears_int8's graph computes."""
    torch.manual_seed(1)
    lin = torch.nn.Linear(64, 24)
    q = QuantLinear.from_linear(lin, rtn(lin.weight.detach(), QuantScheme.int(4, 32, False, scale_dtype="float16")))
    x = torch.randn(1, 7, 64)
    x[0, 2] *= 20
    w_kn = q.weight.detach().numpy().T.copy()
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "lin.weight_t"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 7, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 7, 24])],
        [numpy_helper.from_array(w_kn, "lin.weight_t")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    replace_linears_int8(proto, {"lin": q.qweight})
    y_graph = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x.numpy()})[0] + lin.bias.detach().numpy()
    handle = emulate_int8(q)
    with torch.no_grad():
        y = q(x).numpy()
    handle.remove()
    np.testing.assert_allclose(y, y_graph, rtol=1e-5, atol=1e-5 * np.abs(y).max())
    with torch.no_grad():  # the hook is gone: the fake-quant product again
        assert not np.allclose(q(x).numpy(), y_graph, rtol=1e-5, atol=1e-5 * np.abs(y).max())


def costs_ranking(names: list[str], first: list[str]) -> Int8Costs:
    """Costs that put ``first`` at the top, the others below in graph order."""
    return Int8Costs({n: Int8Cost(10.0 - first.index(n) if n in first else -names.index(n) / 100, 0.0)
                      for n in names})


@pytest.mark.parametrize("first", [["encoder.blocks.0.attn.key", "decoder.blocks.1.cross_attn.value",
                                    "encoder.blocks.1.mlp.fc2"], ["encoder.blocks.1.attn.out"]])
def test_the_costliest_linears_stay_on_float_compute_and_the_artifact_transcribes(tmp_path, measured, first):
    """The choice follows the costs given: another ranking, another set of float Linears."""
    from asrquant.models.whisper.onnx_session import open_onnx_artifact

    ckpt, _, names, _ = measured
    out = tmp_path / "art"
    export(ckpt, out, recipe=parse_recipe(ALL_INT4), compute="int8", int8_skip=len(first),
           int8_costs=costs_ranking(names, first))
    enc = onnx.load(str(out / "encoder.onnx"), load_external_data=False)
    int8_ops = {n.name.split("/")[1] for n in enc.graph.node if n.op_type == OP}
    nbits = {n.name: n for n in enc.graph.node if n.op_type == "MatMulNBits"}
    assert int8_ops == set(names) - set(first) and len(nbits) == len(first)
    levels = {a.i for n in nbits.values() for a in n.attribute if a.name == "accuracy_level"}
    assert not levels - {0}  # float compute (0, the attribute's default), not MatMulNBits' int8 activations
    assert set(graph_linears(enc)) == set()  # every Linear is swapped, by one op or the other
    m = json.loads((out / "manifest.json").read_text())["variants"]["default"]
    assert m["int8_choice"]["float_compute"] == first and m["int8_choice"]["int8"] == len(names) - len(first)
    for n in names:
        t = m["tensors"][n]
        assert t["int8_cost"]["int8"] == (n not in first) and t["op"].startswith(OP) == (n not in first)
        if n in first:
            assert (t["op"], t["accuracy_level"], t["int8_cost"]["rank"]) == ("MatMulNBits", 0, first.index(n) + 1)
    transcriber, _ = open_onnx_artifact(out)
    assert transcriber.transcribe(noisy_tone(2.0, 440), None).tokens is not None


def test_a_count_beyond_the_encoder_graph_or_costs_of_other_linears_are_refused(measured):
    ckpt, _, names, costs = measured
    with pytest.raises(AsrQuantError, match="--int8-skip 17: the encoder graph has 16"):
        choose_float(costs, 17, names)
    with pytest.raises(AsrQuantError, match="not those of this encoder graph"):
        choose_float(costs, 1, names[1:])


def write_calib(directory) -> str:
    directory.mkdir()
    with open(directory / "manifest.jsonl", "w") as f:
        for i, text in enumerate(["the cat sat on the mat", "hello world"]):
            sf.write(directory / f"c{i}.wav", noisy_tone(1.5, 350 + 90 * i, seed=i), 16000)
            f.write(json.dumps({"id": f"c{i}", "audio": f"c{i}.wav", "text": text, "lang": "en"}) + "\n")
    return str(directory / "manifest.jsonl")


def test_an_export_on_calibration_clips_measures_and_records_every_cost(tmp_path):
    ckpt, float_model = quantized_pair(seed=2)
    out = tmp_path / "art"
    export(ckpt, out, recipe=parse_recipe(ALL_INT4), compute="int8", calib=write_calib(tmp_path / "calib"),
           smooth=False, int8_skip=2, float_model=float_model)
    m = json.loads((out / "manifest.json").read_text())["variants"]["default"]
    choice = m["int8_choice"]
    assert choice["calibration"]["ids"] == ["c0", "c1"] and "int8_smoothing" not in m
    costs = {n: t["int8_cost"]["kl_increase"] for n, t in m["tensors"].items() if "int8_cost" in t}
    assert len(costs) == 16 and choice["float_compute"] == sorted(costs, key=costs.get, reverse=True)[:2]
    assert choice["kl_fake_quant"] > 0 and Int8Costs.from_variant(m).kl_fake_quant == choice["kl_fake_quant"]
    assert Int8Costs.from_variant(m).by_linear == {n: Int8Cost(m["tensors"][n]["int8_cost"]["kl_increase"],
                                                               m["tensors"][n]["int8_cost"]["kl_to_fake_quant"])
                                                   for n in choice["linears"]}


@pytest.mark.parametrize("flags,message", [
    (["--int8-skip", "-1"], "must be at least 0"),
    (["--int8-skip", "two"], "not an integer"),
    (["--int8-skip", "2"], "needs --compute int8|use it with --compute int8"),
    (["--int8-skip", "2", "--compute", "int8"], "give --calib"),
    (["--int8-skip", "2", "--format", "mlx"], "--int8-skip is an ONNX option"),
])
def test_bad_int8_skip_is_refused_before_any_work(tmp_path, capsys, flags, message):
    import re

    try:
        code = main(["export", "whisper-tiny.en", "--out", str(tmp_path / "x"), *flags])
    except SystemExit as e:  # argparse's own refusal of a value
        code = e.code
    assert code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "x").exists()
