"""The auto recipe: sensitivities measured per tensor, a scheme chosen per tensor under the budget."""

import numpy as np
import pytest
from test_calibrate import tiny_whisper

from asrquant.errors import AsrQuantError
from asrquant.quant.calibrate import CalibSample, quantize_model
from asrquant.quant.recipe import parse_recipe
from asrquant.quant.sensitivity import CANDIDATES, Tensor, choose, mean_bits, measure, parse_budget, recipe_toml


@pytest.fixture(scope="module")
def measured():
    rng = np.random.default_rng(1)
    samples = [CalibSample(rng.standard_normal((80, 120)).astype(np.float32),
                           rng.integers(0, 100, size=8).astype(np.int64)) for _ in range(2)]
    return samples, measure(tiny_whisper(), samples, progress=False, device="cpu")


def test_measures_every_linear_and_the_table(measured):
    _, tensors = measured
    assert len(tensors) == 2 * 6 + 2 * 10 + 1 and sum(t.table for t in tensors) == 1
    for t in tensors:
        assert set(t.kl) == {s.name for s in CANDIDATES} and all(v >= -1e-6 for v in t.kl.values())
        assert t.kl[CANDIDATES[0].name] > t.kl[CANDIDATES[-1].name]  # 3 bits cost more than 8


def test_decoder_tensors_measured_from_the_held_encoder_output_cost_the_same(measured, monkeypatch):
    # The float encoder's output is computed once for the tensors after it: the same KLs (up to
    # float rounding) as re-encoding each time, which is what the family split saves.
    samples, tensors = measured
    import asrquant.quant.sensitivity as sensitivity

    monkeypatch.setattr(sensitivity, "_after_encoder", lambda *a: None)
    again = {t.name: t.kl for t in measure(tiny_whisper(), samples, progress=False, device="cpu")}
    for t in tensors:
        assert again[t.name] == pytest.approx(t.kl, rel=1e-4, abs=1e-9), t.name


@pytest.mark.parametrize("budget", [4.0, 4.5, 6.0])
def test_choice_respects_the_budget_and_is_a_recipe(measured, budget):
    samples, tensors = measured
    pick = choose(tensors, budget)
    assert mean_bits(tensors, pick) <= budget + 1e-9
    assert budget - mean_bits(tensors, pick) < 1.0  # the budget is used
    text = recipe_toml(tensors, pick, budget, 2, "test")
    recipe = parse_recipe(text)
    assert all(recipe.rule_for(t.name).scheme == pick[t.name] for t in tensors if not t.table)
    assert recipe.embedding.scheme == pick["decoder.token_embedding"]
    report = quantize_model(tiny_whisper(), recipe, samples, progress=False, device="cpu")
    assert report.mean_bits_per_weight <= budget + 1e-9


def test_more_bits_go_where_they_remove_more_loss():
    s3, s4 = CANDIDATES[0], CANDIDATES[1]
    a = Tensor("a", False, (64, 64), {s3.name: 1.0, s4.name: 0.1})
    b = Tensor("b", False, (64, 64), {s3.name: 0.2, s4.name: 0.1})
    pick = choose([a, b], (a.bits(s4) + b.bits(s3)) / (2 * 64 * 64), (s3, s4))
    assert pick == {"a": s4, "b": s3}
    with pytest.raises(AsrQuantError, match="below the cheapest"):
        choose([a, b], 3.0, (s3, s4))


def test_budget_parsing():
    assert parse_budget("4.5bpw") == parse_budget("4.5") == 4.5
    with pytest.raises(AsrQuantError):
        parse_budget("30MB")


def test_cli_has_recipe_auto():
    from asrquant.cli import build_parser

    args = build_parser().parse_args(["recipe", "auto", "whisper-tiny.en", "--calib", "c.jsonl", "--budget", "4.5bpw",
                                      "--out", "r.toml"])
    assert args.func.__name__ == "cmd_recipe_auto" and args.budget == "4.5bpw" and args.clips == 8
    assert args.costs == "rtn"


def test_gptq_costs_fit_other_clips_and_cost_less(measured, monkeypatch):
    # --costs gptq: every Linear at every scheme is quantized by GPTQ on the Hessian of its inputs
    # over the other clips (never the clips the KL is measured on); the token table stays RTN.
    samples, rtn = measured
    import asrquant.quant.sensitivity as sensitivity

    rng = np.random.default_rng(7)
    others = [CalibSample(rng.standard_normal((80, 120)).astype(np.float32),
                          rng.integers(0, 100, size=8).astype(np.int64)) for _ in range(3)]
    model = tiny_whisper()
    linears = [t.name for t in rtn if not t.table]
    from asrquant.models.whisper import calib

    expected = sensitivity.input_hessians(model, calib, others, linears, "cpu", progress=False)
    calls = []
    real = sensitivity.gptq

    def spy(weight, hessian, scheme, **kw):
        calls.append((hessian, scheme))
        return real(weight, hessian, scheme, **kw)

    monkeypatch.setattr(sensitivity, "gptq", spy)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    gptq_costs = measure(model, samples, progress=False, device="cpu", hessian_samples=others)
    assert len(calls) == len(linears) * len(CANDIDATES)
    for k, name in enumerate(linears):  # in measuring order, each Linear's own Hessian of the other clips
        assert all(torch_equal(h, expected[name]) for h, _ in calls[k * len(CANDIDATES):(k + 1) * len(CANDIDATES)])
    assert all(torch_equal(p, before[n]) for n, p in model.named_parameters())  # every weight restored
    table = next(t for t in gptq_costs if t.table)
    assert table.kl == pytest.approx(next(t for t in rtn if t.table).kl, rel=1e-5, abs=1e-9)
    s3 = CANDIDATES[0].name
    assert sum(t.kl[s3] for t in gptq_costs if not t.table) < sum(t.kl[s3] for t in rtn if not t.table)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_recipe_says_how_costs_were_measured(measured):
    _, tensors = measured
    pick = choose(tensors, 4.5)
    assert "quantized by GPTQ" in recipe_toml(tensors, pick, 4.5, 2, "test", costs="gptq")
    assert "rounded to nearest" in recipe_toml(tensors, pick, 4.5, 2, "test")
