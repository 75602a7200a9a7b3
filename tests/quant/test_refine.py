"""The DWQ refinement: recipes name it, it brings a tiny random Whisper closer to float than its
GPTQ start (block by block and end to end), and it yields ordinary QuantizedWeights."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_calibrate import logits, random_samples, tiny_whisper

from asrquant.errors import AsrQuantError
from asrquant.quant.calibrate import CalibSample, quantize_model, quantized_weights
from asrquant.quant.linear import QuantEmbedding, QuantLinear
from asrquant.quant.qtensor import dequantize
from asrquant.quant.recipe import parse_recipe, recipe_from_dict


def recipe(refine: str = "", algorithm: str = "gptq", clips: int = 8, **rule) -> str:
    extra = "".join(f"{k} = {v}\n" for k, v in rule.items())
    return (f"[calibration]\nclips = {clips}\n[[rules]]\nbits = 4\ngroup_size = 32\nscale_dtype = \"float16\"\n"
            f"algorithm = \"{algorithm}\"\n{extra}{refine}\n")


@pytest.fixture(scope="module")
def samples():
    return random_samples(6)


def mean_kl(model, ref, samples) -> float:
    out = []
    for s, r in zip(samples, ref):
        lp, rp = F.log_softmax(logits(model, s)[0], -1), F.log_softmax(r, -1)
        out.append((rp.exp() * (rp - lp)).sum(-1).mean().item())
    return float(np.mean(out))


@pytest.fixture(scope="module")
def gptq_kl(samples):
    ref = [logits(tiny_whisper(), s)[0] for s in samples]
    model = tiny_whisper()
    quantize_model(model, parse_recipe(recipe()), samples, progress=False, device="cpu")
    return ref, mean_kl(model, ref, samples)


@pytest.mark.parametrize("level", ["block", "e2e"])
def test_refined_whisper_is_closer_to_float_than_gptq(level, samples, gptq_kl):
    ref, kl_gptq = gptq_kl
    model = tiny_whisper()
    r = parse_recipe(recipe(f'refine = "dwq"\nrefine_options = {{ level = "{level}", steps = 60 }}'))
    report = quantize_model(model, r, samples, progress=False, device="cpu")
    kl = mean_kl(model, ref, samples)
    assert kl < 0.8 * kl_gptq, (kl, kl_gptq)
    rows = [l for l in report.layers if level in l.refine_loss]
    assert len(rows) == len(report.layers) and report.refine_seconds > 0
    assert any(b > a for b, a in (l.refine_loss[level] for l in rows))
    assert all(l.algorithm == "gptq+dwq" for l in rows if l.refine_loss[level][1] < l.refine_loss[level][0])
    assert "refinement loss before → after" in report.to_markdown()
    # The same one representation: the fake-quant weight is the dequantized codes, float16 scales.
    for name, qw in quantized_weights(model).items():
        assert qw.scales.dtype == torch.float32 and torch.equal(qw.scales, qw.scales.half().float())
        assert torch.equal(model.get_submodule(name).weight, dequantize(qw))
        assert isinstance(model.get_submodule(name), QuantLinear)
    assert not any(p.requires_grad is False for p in model.parameters())  # left as found


def test_a_refinement_is_repeatable_on_one_machine(samples):
    """The same recipe on the same clips gives the same codes, scales and zero points again: the
    training units' order is seeded, nothing else draws. (Across CPUs it does not hold, nor across
    thread counts for a refinement: float sums round differently and GPTQ's and the training's
    choices follow; benchmarks/refinement/README.md.)"""
    r = parse_recipe(recipe('refine = "dwq"\nrefine_options = { level = "e2e", steps = 20 }'))
    runs = []
    for draws in (1, 7):
        model = tiny_whisper()
        torch.rand(draws)  # the global generator stands elsewhere each run: the refinement must not read it
        quantize_model(model, r, samples, progress=False, device="cpu")
        runs.append(quantized_weights(model))
    a, b = runs
    assert a.keys() == b.keys() and a
    for name in a:
        for part in ("codes", "scales", "zero_points"):
            assert torch.equal(getattr(a[name], part), getattr(b[name], part)), (name, part)


def table_recipe(table_refine: str) -> str:
    """Linears by GPTQ alone; the tied token table int4 by GPTQ, then ``table_refine``."""
    return recipe() + ('[embedding]\nbits = 4\ngroup_size = 32\nscale_dtype = "float16"\nalgorithm = "gptq"\n'
                       f"{table_refine}\n")


def test_the_token_table_is_refined_end_to_end(samples):
    """Whisper's token table is its lookups and its logits' weights: refined end to end, its learned
    scales are trained through both, and the table written brings the model closer to float than
    the table's GPTQ start on the check samples, by the loss the refinement reported (the Linears'
    GPTQ alone in both, so the table's refinement is all that differs). Over all 6 samples it need
    not: on this random model one sample's KL, 15 times the others', rises (0.0051 -> 0.0068)."""
    from asrquant.quant.refine import _check_units

    ref = [logits(tiny_whisper(), s)[0] for s in samples]
    start = tiny_whisper()
    quantize_model(start, parse_recipe(table_recipe("")), samples, progress=False, device="cpu")
    model = tiny_whisper()
    r = parse_recipe(table_recipe('refine = "dwq"\nrefine_options = { level = "e2e", steps = 60 }'))
    report = quantize_model(model, r, samples, progress=False, device="cpu")
    name = "decoder.token_embedding"
    row = next(l for l in report.layers if l.name == name)
    before, after = row.refine_loss["e2e"]
    assert after < 0.5 * before and row.algorithm == "gptq+dwq", (before, after)
    check = [samples[i] for i in _check_units(len(samples))]
    check_ref = [ref[i] for i in _check_units(len(samples))]
    assert mean_kl(start, check_ref, check) == pytest.approx(before, rel=1e-3)
    assert mean_kl(model, check_ref, check) == pytest.approx(after, rel=0.05)  # float16 scales written
    assert [l.name for l in report.layers if l.refine_loss] == [name]  # the Linears did not refine
    a, b = quantized_weights(start)[name], quantized_weights(model)[name]
    assert torch.equal(a.codes, b.codes) and torch.equal(a.zero_points, b.zero_points)  # scales only, by default
    assert not torch.equal(a.scales, b.scales) and torch.equal(b.scales, b.scales.half().float())
    table = model.get_submodule(name)
    assert isinstance(table, QuantEmbedding) and torch.equal(table.weight, dequantize(b))
    for n, qw in quantized_weights(model).items():  # every Linear as its GPTQ start
        if n != name:
            assert torch.equal(qw.scales, quantized_weights(start)[n].scales), n
    assert all(p.requires_grad for p in model.parameters())  # left as found


def test_float_params_train_the_biases_end_to_end(samples):
    """``float_params = true`` at the end-to-end level trains the refined Linears' biases beside the
    scales: the check loss falls below the scales-only refinement's, the biases written are the
    trained ones (what the saved artifact and every exporter read) and the codes and zero points
    are the start's. Norms are not trained there (no block to hold them)."""
    from asrquant.quant.saved import model_tensors

    def refined(float_params: str):
        model = tiny_whisper()
        r = parse_recipe(recipe('refine = "dwq"\nrefine_options = '
                                f'{{ level = "e2e", steps = 60, float_params = {float_params} }}'))
        return model, quantize_model(model, r, samples, progress=False, device="cpu")

    scales, scales_report = refined("false")
    model, report = refined("true")
    kept, scales_kept = report.layers[0].refine_loss["e2e"][1], scales_report.layers[0].refine_loss["e2e"][1]
    assert kept < scales_kept, (kept, scales_kept)  # one end-to-end check for every Linear
    start, tensors = dict(tiny_whisper().named_parameters()), model_tensors(model)
    moved = []
    for name, m in model.named_modules():
        if isinstance(m, QuantLinear) and m.bias is not None:
            assert torch.equal(tensors[f"{name}.bias"].float(), m.bias), name  # saved as trained
            moved += [name] if not torch.equal(m.bias, start[f"{name}.bias"]) else []
            assert torch.equal(scales.get_submodule(name).bias, start[f"{name}.bias"]), name  # scales only: kept
    assert len(moved) > 10, moved
    norms = {n: p for n, p in model.named_parameters() if "ln" in n}
    assert norms and all(torch.equal(p, start[n]) for n, p in norms.items())
    for name, qw in quantized_weights(model).items():  # the scales-only build's codes: GPTQ's
        other = quantized_weights(scales)[name]
        assert torch.equal(qw.codes, other.codes) and torch.equal(qw.zero_points, other.zero_points), name
    assert all(p.requires_grad for p in model.parameters())  # left as found


def test_rtn_start_and_symmetric_scheme(samples):
    ref = [logits(tiny_whisper(), s)[0] for s in samples]
    start = tiny_whisper()
    quantize_model(start, parse_recipe(recipe(algorithm="rtn", symmetric="true")), samples, progress=False,
                   device="cpu")
    model = tiny_whisper()
    r = parse_recipe(recipe('refine = "dwq"\nrefine_options = { steps = 40 }', algorithm="rtn", symmetric="true"))
    quantize_model(model, r, samples, progress=False, device="cpu")
    assert mean_kl(model, ref, samples) < mean_kl(start, ref, samples)
    assert all(qw.zero_points is None for qw in quantized_weights(model).values())


def test_recipe_fields_are_validated():
    r = parse_recipe(recipe('refine = "dwq"\nrefine_options = { level = "both", lr = 0.01 }'))
    rule = r.rules[0]
    assert rule.refine == "dwq" and rule.refine_levels() == ("block", "e2e") and r.needs_calibration
    again = recipe_from_dict(r.to_dict())
    assert again.rules[0].all_refine_options() == rule.all_refine_options()
    bad = {
        'refine = "nope"': "unknown refinement",
        'refine = "dwq"\nrefine_options = { level = "layer" }': "refine_options.level",
        'refine = "dwq"\nrefine_options = { steps = 0 }': "refine_options.steps",
        'refine = "dwq"\nrefine_options = { batch = 0 }': "refine_options.batch",
        'refine = "dwq"\nrefine_options = { lr = -1.0 }': "refine_options.lr",
        'refine = "dwq"\nrefine_options = { check_clips = 0 }': "refine_options.check_clips",
        'refine = "dwq"\nrefine_options = { level = "e2e", check = "wer" }': "refine_options.check",
        'refine = "dwq"\nrefine_options = { check = "greedy" }': "it needs level = \"e2e\"",
        'refine = "dwq"\nrefine_options = { foo = 1 }': "refine_options.foo",
        'refine = "dwq"\nrefine_options = { steps = "many" }': "must be int",
        'refine_options = { steps = 3 }': "given without refine",
        'refine = "gptq"': "unknown refinement",
    }
    for text, msg in bad.items():
        with pytest.raises(AsrQuantError, match=msg):
            parse_recipe(recipe(text))
    with pytest.raises(AsrQuantError, match="a refinement: name it as refine"):
        parse_recipe(recipe(algorithm="dwq"))
    with pytest.raises(AsrQuantError, match="dwq refines rtn or gptq, not awq"):
        parse_recipe(recipe('refine = "dwq"', algorithm="awq"))
    with pytest.raises(AsrQuantError, match="trains on calibration clips"):
        parse_recipe(recipe('refine = "dwq"', algorithm="rtn", clips=0))
    nvfp4 = '[calibration]\nclips = 4\n[[rules]]\nformat = "nvfp4"\nalgorithm = "rtn"\nrefine = "dwq"\n'
    with pytest.raises(AsrQuantError, match="not an integer scheme"):
        parse_recipe(nvfp4)
    table = recipe() + '[embedding]\nbits = 4\nrefine = "dwq"\n'
    with pytest.raises(AsrQuantError, match=r'embedding.refine_options.level: a table is refined end to end only'):
        parse_recipe(table)  # dwq's default level is "block"; a table belongs to no block
    with pytest.raises(AsrQuantError, match="embedding.refine_options.activations: a table is not in the int8 chain"):
        parse_recipe(table + 'refine_options = { level = "e2e", activations = "int8" }\n')
    with pytest.raises(AsrQuantError, match="embedding.refine_options.foo"):
        parse_recipe(table + 'refine_options = { level = "e2e", foo = 1 }\n')
    e2e = parse_recipe(table + 'refine_options = { level = "e2e", steps = 9 }\n')
    assert e2e.embedding.refine_levels() == ("e2e",)
    assert recipe_from_dict(e2e.to_dict()).embedding.all_refine_options() == e2e.embedding.all_refine_options()


class OneNumberSession:
    """A stand-in for refine.Session over one learned number ``p``; ``on_step(p)`` is what a step does."""

    def __init__(self, p: torch.Tensor, on_step):
        self.p, self.on_step = p, on_step

    def snapshot(self):
        return [self.p.detach().clone()]

    def restore(self, snap):
        self.p.data.copy_(snap[0])

    def step(self):
        self.on_step(self.p)
        self.p.grad = None


def test_a_step_sums_the_gradients_of_batch_units():
    """With ``batch`` units a step, the sign is taken of the gradients of that many units summed."""
    from asrquant.quant import refine

    p = torch.zeros(1, requires_grad=True)
    calls, grads = [], []

    def step_loss(t):
        calls.append(t)
        return p * len(calls)  # the units' gradients 1, 2, 3, then 4, 5, 6, ...

    summing = OneNumberSession(p, lambda p: grads.append(p.grad.item()))
    refine.train(summing, 4, step_loss, lambda: -len(calls), batch=3)  # the check always falls
    assert calls == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert grads == [6, 15, 24, 33]


@pytest.mark.parametrize("level", ["block", "e2e"])
def test_check_units_are_never_trained_on(level, monkeypatch):
    """Early stopping and the kept check judge held-out samples: no training step (a forward with
    gradients) touches a check unit once there are more than 2 * CHECK_UNITS units."""
    import asrquant.quant.calibrate as calibrate
    from asrquant.quant import refine

    rng = np.random.default_rng(1)
    samples = [CalibSample(rng.standard_normal((80, 200)).astype(np.float32),
                           rng.integers(0, 100, size=int(rng.integers(5, 15))).astype(np.int64)) for _ in range(12)]
    seen = []  # per refinement: (units, indices trained on, indices checked on)

    def recording(fn):
        trained, checked = set(), set()

        def wrapped(i, *args):
            (trained if torch.is_grad_enabled() else checked).add(i)
            return fn(i, *args)
        return wrapped, trained, checked

    def block(model, run, rec, items, advance=None, run_one=None):
        n = sum(t.shape[0] for t in rec.targets)
        run_one, trained, checked = recording(run_one)
        seen.append((n, trained, checked))
        return refine.refine_block(model, run, rec, items, advance, run_one)

    def e2e(model, logits_fn, teacher, items, advance=None, free_run=None):
        logits_fn, trained, checked = recording(logits_fn)
        seen.append((len(teacher.log_probs), trained, checked))
        return refine.refine_end_to_end(model, logits_fn, teacher, items, advance, free_run)

    monkeypatch.setattr(calibrate, "refine_block", block)
    monkeypatch.setattr(calibrate, "refine_end_to_end", e2e)
    r = parse_recipe(recipe(f'refine = "dwq"\nrefine_options = {{ level = "{level}", steps = 24 }}', clips=12))
    quantize_model(tiny_whisper(), r, samples, progress=False, device="cpu")
    held = [(n, t, c) for n, t, c in seen if n > 2 * refine.CHECK_UNITS]
    assert held, seen  # some refinement had enough units to hold the check units out
    for n, trained, checked in held:
        assert checked == set(refine._check_units(n)) and trained, (n, trained, checked)
        assert not trained & checked, (n, trained, checked)
    assert refine._split_units(2 * refine.CHECK_UNITS)[0] == list(range(2 * refine.CHECK_UNITS))


def test_a_greedy_check_keeps_the_least_check_in_its_order():
    """FreeRunCheck values compare disagreement first, the KL on ties: the snapshot kept is the least."""
    from asrquant.quant import refine

    p = torch.zeros(1, requires_grad=True)
    c = refine.FreeRunCheck
    checks = itertools.chain([c(0.5, 1.0), c(0.4, 2.0), c(0.4, 0.9), c(0.6, 0.1), c(0.4, 0.95)],
                             itertools.repeat(c(0.7, 0.0)))
    counting = OneNumberSession(p, lambda p: p.data.add_(1))  # p counts the steps taken
    before, best = refine.train(counting, refine.CHECKS * 4, lambda t: p.sum(), lambda: next(checks))
    assert before == (0.5, 1.0) and best == (0.4, 0.9)
    assert p.item() == 2 * 4  # the snapshot of the second check (two checks of every 4 steps)


def test_a_greedy_check_never_keeps_what_decodes_further_from_float():
    """check = "greedy": the float model's greedy tokens on the held-out check clips are the
    reference, and the refined model decodes them no further from it than its GPTQ start does."""
    from asrquant.eval.metrics import edit_distance
    from asrquant.models.whisper.calib import free_running_tokens

    held = [CalibSample(s.mel, s.tokens, 2) for s in random_samples(12)]  # 12 > 2 * 4: check clips held out
    check = [held[i] for i in (0, 4, 7, 11)]  # refine._check_units(12, 4)
    float_model = tiny_whisper()
    ref = [free_running_tokens(float_model, s) for s in check]

    def disagreement(model) -> float:
        return sum(edit_distance(r, free_running_tokens(model, s)) for r, s in zip(ref, check)) / sum(map(len, ref))

    start = tiny_whisper()
    quantize_model(start, parse_recipe(recipe(clips=12)), held, progress=False, device="cpu")
    model = tiny_whisper()
    opts = 'level = "e2e", steps = 24, check = "greedy"'
    r = parse_recipe(recipe(f'refine = "dwq"\nrefine_options = {{ {opts} }}', clips=12))
    report = quantize_model(model, r, held, progress=False, device="cpu")
    note = next(n for n in report.notes if "decoded 4 held-out clips greedily" in n)
    assert f"{disagreement(start):.2%} -> {disagreement(model):.2%}" in note, (note, disagreement(start))
    assert disagreement(model) <= disagreement(start)
    with pytest.raises(AsrQuantError, match="say where their prompt ends"):
        quantize_model(tiny_whisper(), r, random_samples(12), progress=False, device="cpu")
