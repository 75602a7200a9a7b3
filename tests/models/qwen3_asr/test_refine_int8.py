"""DWQ through the CPU export's int8 chain on the small random Qwen3-ASR: the trained forward is
emulate_int8's on exactly the audio encoder graph's Linears, which the benchmark recipe's int8 rule
picks, and the int8 model it leaves is closer to float than its GPTQ start and than the same
refinement trained on float products."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from asrquant.export.onnx.int8_choice import emulate_int8
from asrquant.export.onnx.int8_matmul import graph_linears
from asrquant.quant.calibrate import quantize_model
from asrquant.quant.linear import linear_names
from asrquant.quant.recipe import load_recipe, parse_recipe
from asrquant.quant.refine import Item, Session

from .qwen3_asr_fixture import random_model, small_dims
from .test_pipeline_calib import calib_samples

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "quant"))  # the shared refine_int8_fixtures

from refine_int8_fixtures import learned_as_int8_linears  # noqa: E402

RECIPE = Path(__file__).parents[3] / "benchmarks/refinement/recipes/gptq-int4-g64-enc32-emb4-dwq-e2e-int8.toml"
RULE = 'bits = 4\ngroup_size = 32\nscale_dtype = "float16"\nalgorithm = "gptq"\n'


def recipe(activations: str | None = "int8", refine: bool = True) -> str:
    dwq = 'refine = "dwq"\nrefine_options = {{ level = "e2e", steps = 60{} }}\n'
    enc = dwq.format(f', activations = "{activations}"') if refine else ""
    rest = dwq.format("") if refine else ""
    return f'[calibration]\nclips = 3\n[[rules]]\nkind = "encoder"\n{RULE}{enc}[[rules]]\n{RULE}{rest}'


@pytest.fixture(scope="module")
def float_model():
    return random_model(small_dims(), seed=2)


def encoder_linears(model) -> list[str]:
    return [n for n in linear_names(model) if n.startswith(("audio_tower.", "thinker.audio_tower."))]


def logits(model, s):
    return model.teacher_forced_logits(torch.from_numpy(s.mel), torch.from_numpy(s.tokens)[None])[0]


def int8_kl(model, float_model, samples) -> float:
    handles = [emulate_int8(model.get_submodule(n)) for n in encoder_linears(model)]
    out = []
    try:
        with torch.no_grad():
            for s in samples:
                want, got = F.log_softmax(logits(float_model, s), -1), F.log_softmax(logits(model, s), -1)
                out.append((want.exp() * (want - got)).sum(-1).mean().item())
    finally:
        for h in handles:
            h.remove()
    return sum(out) / len(out)


def test_the_benchmark_recipe_runs_exactly_the_audio_encoder_graphs_linears_int8(float_model):
    from asrquant.models.qwen3_asr.onnx_graphs import trace_graphs

    r = load_recipe(str(RECIPE))
    in_graph = set(graph_linears(trace_graphs(float_model)["encoder"]))
    int8 = {n for n in linear_names(float_model)
            if (rule := r.rule_for(n)) is not None and rule.all_refine_options().get("activations") == "int8"}
    assert int8 == in_graph and in_graph == set(encoder_linears(float_model)) and in_graph


def test_the_trained_forward_is_the_int8_chain_of_the_export(float_model):
    samples = calib_samples(float_model.dims)
    model = copy.deepcopy(float_model)
    quantize_model(model, parse_recipe(recipe(refine=False)), samples, progress=False, device="cpu")
    r = parse_recipe(recipe())
    items = [Item(n, model.get_submodule(n).weight.detach().clone(), r.rule_for(n)) for n in linear_names(model)
             if r.rule_for(n) is not None]
    session = Session(model, items, steps=10)
    torch.manual_seed(3)
    with torch.no_grad():
        for it in items:
            model.get_submodule(it.name).learned.a.normal_(0, 0.05)
        trained = logits(model, samples[0])
    check, handles = learned_as_int8_linears(model, items)
    assert len(handles) == len(encoder_linears(check)) > 0
    with torch.no_grad():
        emulated = logits(check, samples[0])
    torch.testing.assert_close(trained, emulated, rtol=1e-5, atol=1e-5 * emulated.abs().max().item())
    session.finish(keep=False)


def test_int8_in_the_loop_brings_the_int8_model_closer_to_float(float_model):
    """By the int8 chain's teacher-forced KL to float: below the GPTQ start's and below the same
    refinement's trained on float products."""
    samples = calib_samples(float_model.dims)
    start = copy.deepcopy(float_model)
    quantize_model(start, parse_recipe(recipe(refine=False)), samples, progress=False, device="cpu")
    kls = {"gptq": int8_kl(start, float_model, samples)}
    for act in ("float", "int8"):
        model = copy.deepcopy(float_model)
        report = quantize_model(model, parse_recipe(recipe(act)), samples, progress=False, device="cpu")
        marked = {l.name for l in report.layers if "int8 chain" in l.note}
        assert marked == (set(encoder_linears(model)) if act == "int8" else set())
        kls[act] = int8_kl(model, float_model, samples)
    print(kls)
    assert kls["int8"] < kls["float"] < kls["gptq"], kls
