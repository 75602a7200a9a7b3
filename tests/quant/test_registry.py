"""Algorithms looked up by name: a recipe and calibration take any registered one, unchanged."""

import re
import subprocess
import sys
from types import MappingProxyType

import numpy as np
import pytest
import torch
from torch import nn

from asrquant.errors import AsrQuantError
from asrquant.quant import recipe as recipe_module
from asrquant.quant.algorithms import Algorithm, ScaleSearch, algorithm_names, get_algorithm, register, unregister
from asrquant.quant.algorithms.awq import apply_awq
from asrquant.quant.algorithms.rtn import rtn
from asrquant.quant.calibrate import CalibBlock, CalibSample, InputGroup, quantize_model, quantized_weights
from asrquant.quant.recipe import parse_recipe

BUILTIN = ("rtn", "gptq", "awq", "awq-lite", "dwq")
WIDTH, HIDDEN = 16, 32


class ShrunkRTN(Algorithm):
    """Round to nearest with every group's range shrunk: a calibrated algorithm defined outside the package."""

    name = "toy-shrunk-rtn"
    options = MappingProxyType({"shrink": (float, 1.0)})

    def __init__(self):
        self.hessian_shapes = []

    def quantize(self, weight, scheme, stats, device, shrink):
        self.hessian_shapes.append(tuple(stats.hessian.shape))
        return rtn(weight, scheme, clip=shrink)

    def option_problem(self, options, scheme):
        return None if 0 < options["shrink"] <= 1 else ("shrink", "must be in (0, 1]")


class DoubledInputs(ScaleSearch):
    """A scale search that always finds 2: exact in float, so the folded norm must be halved exactly."""

    name = "toy-doubled-inputs"

    def search(self, weight, scheme, stats, device):
        return torch.full((weight.shape[1],), 2.0), None, {}

    def apply(self, weight, s, ratios, scheme, info):
        return apply_awq(weight, s, ratios, scheme, info)


@pytest.fixture
def toys():
    for cls in (ShrunkRTN, DoubledInputs):
        register(cls)
    yield get_algorithm(ShrunkRTN.name), get_algorithm(DoubledInputs.name)
    for cls in (ShrunkRTN, DoubledInputs):
        unregister(cls.name)


class TinyBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(WIDTH)
        self.fc1 = nn.Linear(WIDTH, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, WIDTH)

    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(self.norm(x))))


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.blocks = nn.ModuleList([TinyBlock(), TinyBlock()])
        with torch.no_grad():
            self.blocks[0].norm.weight.uniform_(0.5, 1.5)


class TinyAdapter:
    """fc1 reads its block's norm (a group whose scale may fold there); fc2 reads fc1's activations."""

    def __init__(self, model: TinyNet):
        self.model = model
        self.inputs = [torch.randn(7, WIDTH, generator=torch.Generator().manual_seed(i)) for i in range(3)]

    def blocks(self):
        xs = self.inputs
        for i, block in enumerate(self.model.blocks):
            groups = [InputGroup([f"blocks.{i}.fc1"], norm=f"blocks.{i}.norm"), InputGroup([f"blocks.{i}.fc2"])]
            yield CalibBlock(f"blocks.{i}", lambda block=block, xs=xs: [block(x) for x in xs], groups)
            xs = [block(x) for x in xs]


def toy_recipe(algorithm: str, options: str = "", clips: int = 3) -> str:
    return (f"[calibration]\nclips = {clips}\n[[rules]]\nbits = 4\ngroup_size = 8\nalgorithm = '{algorithm}'\n"
            + (f"options = {{ {options} }}\n" if options else ""))


def calibrate(recipe_text: str) -> tuple[TinyNet, TinyNet, object]:
    """(float copy, quantized model, report)."""
    reference, model = TinyNet(), TinyNet()
    samples = [CalibSample(np.zeros((1, 1), np.float32), np.zeros(1, np.int64))] * 3  # the adapter has its own
    report = quantize_model(model, parse_recipe(recipe_text), samples, progress=False, device="cpu",
                            adapter=TinyAdapter(model))
    return reference, model, report


def test_the_builtin_algorithms_are_registered_in_order():
    assert algorithm_names() == BUILTIN
    assert [n for n in BUILTIN if get_algorithm(n).needs_stats] == ["gptq", "awq", "awq-lite"]
    assert [n for n in BUILTIN if get_algorithm(n).quantizes_tables] == ["rtn", "gptq"]
    assert [n for n in BUILTIN if get_algorithm(n).folds_into_norm] == ["awq", "awq-lite"]
    assert dict(get_algorithm("gptq").options) == {"damp": (float, 0.01), "block_size": (int, 128),
                                                   "act_order": (bool, True), "static_groups": (bool, True),
                                                   "clip_search": (bool, False), "float_inputs": (bool, False)}
    assert [n for n in BUILTIN if get_algorithm(n).wants_float_inputs({"float_inputs": True})] == ["gptq"]
    assert set(get_algorithm("awq").options) == {"grid", "clip", "clip_grid", "max_shrink"}
    assert dict(get_algorithm("awq-lite").options) == {"grid": (int, 20)}
    # the recipe module's former constants, now views of the registry
    assert recipe_module.ALGORITHMS == BUILTIN and recipe_module.EMBEDDING_ALGORITHMS == ("rtn", "gptq")
    assert (recipe_module.ALGORITHM_OPTIONS["rtn"] == {}
            and recipe_module.ALGORITHM_OPTIONS["awq-lite"] == {"grid": (int, 20)})


def test_importing_recipes_leaves_the_algorithms_unimported():
    code = ("import sys, asrquant.quant.recipe as r\n"
            "mods = lambda: sorted(m for m in sys.modules if m.startswith('asrquant.quant.algorithms.'))\n"
            "assert mods() == ['asrquant.quant.algorithms.registry'], mods()\n"
            "r.parse_recipe('[[rules]]\\nbits = 8\\n')\n"
            "assert 'asrquant.quant.algorithms.gptq' in mods(), mods()\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_registration_needs_a_free_name():
    class Nameless(Algorithm):
        def quantize(self, weight, scheme, stats, device):
            return rtn(weight, scheme)

    class Impostor(Nameless):
        name = "gptq"

    with pytest.raises(ValueError, match="needs a name"):
        register(Nameless)
    with pytest.raises(ValueError, match="'gptq' is already registered"):
        register(Impostor)
    assert type(get_algorithm("gptq")).__name__ == "GPTQ"
    with pytest.raises(AsrQuantError, match="unknown algorithm 'magic' .*rtn, gptq, awq, awq-lite"):
        get_algorithm("magic")


@pytest.mark.parametrize("text,key,message", [
    (toy_recipe("magic"), "rules[0].algorithm", "unknown algorithm 'magic' (expected one of: rtn, gptq, awq, awq-lite"),
    (toy_recipe("gptq", "dampen = 0.1"), "rules[0].options.dampen", "unknown key (expected one of: act_order, "),
    (toy_recipe("gptq", "damp = 0.0"), "rules[0].options.damp", "must be > 0"),
    (toy_recipe("awq-lite", "clip = false"), "rules[0].options.clip", "unknown key (expected one of: grid)"),
    (toy_recipe("awq", clips=0), "calibration.clips", "rules[0].algorithm awq needs calibration clips"),
])
def test_unknown_algorithms_and_options_are_refused_naming_the_field(text, key, message):
    with pytest.raises(AsrQuantError) as e:
        parse_recipe(text)
    assert f"<recipe>: {key}: " in str(e.value) and message in str(e.value)


def test_a_registered_algorithm_is_read_by_recipes(toys):
    n = len(BUILTIN)
    assert algorithm_names()[:n] == BUILTIN and set(algorithm_names()[n:]) == {ShrunkRTN.name, DoubledInputs.name}
    rule = parse_recipe(toy_recipe(ShrunkRTN.name, "shrink = 0.75")).rules[0]
    assert rule.needs_stats and rule.option("shrink") == 0.75 and rule.to_dict()["options"] == {"shrink": 0.75}
    refusals = {
        "rules[0].options.wat": toy_recipe(ShrunkRTN.name, "wat = 1"),
        "rules[0].options.shrink": toy_recipe(ShrunkRTN.name, "shrink = 'a lot'"),
        "calibration.clips": toy_recipe(ShrunkRTN.name, clips=0),
        "embedding.algorithm": "[[rules]]\nbits = 8\n[embedding]\nbits = 8\nalgorithm = 'toy-shrunk-rtn'\n",
    }
    for key, text in refusals.items():
        with pytest.raises(AsrQuantError, match=re.escape(f"<recipe>: {key}: ")):
            parse_recipe(text)
    with pytest.raises(AsrQuantError, match=r"rules\[0\]\.options\.shrink: must be in \(0, 1\]"):
        parse_recipe(toy_recipe(ShrunkRTN.name, "shrink = 1.5"))


def test_a_registered_algorithm_quantizes_by_calibration(toys):
    shrunk, _ = toys
    reference, model, report = calibrate(toy_recipe(ShrunkRTN.name, "shrink = 0.75"))
    qws = quantized_weights(model)
    assert set(qws) == {f"blocks.{i}.{fc}" for i in range(2) for fc in ("fc1", "fc2")}
    for name, qw in qws.items():
        expected = rtn(reference.get_submodule(name).weight.detach(), qw.scheme, clip=0.75)
        assert torch.equal(qw.codes, expected.codes) and torch.equal(qw.scales, expected.scales)
    assert sorted(shrunk.hessian_shapes) == [(WIDTH, WIDTH)] * 2 + [(HIDDEN, HIDDEN)] * 2
    assert {l.algorithm for l in report.layers} == {ShrunkRTN.name}
    assert all(l.rel_output_error is not None for l in report.layers)


def test_a_registered_scale_search_is_folded_into_the_norm(toys):
    reference, model, _ = calibrate(toy_recipe(DoubledInputs.name))
    qws = quantized_weights(model)
    for i in range(2):
        fc1, fc2 = qws[f"blocks.{i}.fc1"], qws[f"blocks.{i}.fc2"]
        assert fc1.input_scale is None and fc1.info["folded_into"] == f"blocks.{i}.norm"
        assert torch.equal(model.blocks[i].norm.weight, reference.blocks[i].norm.weight / 2)
        assert torch.equal(fc1.codes, rtn(reference.blocks[i].fc1.weight.detach() * 2, fc1.scheme).codes)
        assert torch.equal(fc2.input_scale, torch.full((HIDDEN,), 2.0))  # no norm to fold into
