"""The DWQ refinement on the small random Qwen3-ASR: closer to float than its GPTQ start by the
teacher-forced KL, block by block and end to end; with a greedy check, no further from the float
model's greedy tokens."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from asrquant.eval.metrics import edit_distance
from asrquant.models.qwen3_asr.calib import free_running_tokens
from asrquant.quant.calibrate import quantize_model
from asrquant.quant.recipe import parse_recipe

from .qwen3_asr_fixture import random_model, small_dims
from .test_pipeline_calib import calib_samples

GPTQ = """
[calibration]
clips = 3
[[rules]]
bits = 4
group_size = 32
scale_dtype = "float16"
algorithm = "gptq"
"""


@pytest.fixture(scope="module")
def float_model():
    return random_model(small_dims(), seed=2)


def kl(model, float_model, samples) -> float:
    out = []
    with torch.no_grad():
        for s in samples:
            mel, ids = torch.from_numpy(s.mel), torch.from_numpy(s.tokens)[None]
            want = F.log_softmax(float_model.teacher_forced_logits(mel, ids)[0], -1)
            got = F.log_softmax(model.teacher_forced_logits(mel, ids)[0], -1)
            out.append((want.exp() * (want - got)).sum(-1).mean().item())
    return sum(out) / len(out)


@pytest.mark.parametrize("level", ["block", "e2e"])
def test_refined_qwen3_asr_is_closer_to_float_than_gptq(float_model, level):
    samples = calib_samples(float_model.dims)
    start = copy.deepcopy(float_model)
    quantize_model(start, parse_recipe(GPTQ), samples, progress=False, device="cpu")
    model = copy.deepcopy(float_model)
    recipe = parse_recipe(GPTQ + f'refine = "dwq"\nrefine_options = {{ level = "{level}", steps = 60 }}\n')
    report = quantize_model(model, recipe, samples, progress=False, device="cpu")
    assert any(l.algorithm == "gptq+dwq" for l in report.layers)
    assert kl(model, float_model, samples) < 0.9 * kl(start, float_model, samples)


def test_a_greedy_check_decodes_qwen3_asr_no_further_from_float(float_model):
    samples = calib_samples(float_model.dims)
    ref = free_running_tokens(float_model, samples[0])  # the one check clip: refine._check_units(3, 1)
    assert ref and samples[0].tokens[-1] not in ref
    start = copy.deepcopy(float_model)
    quantize_model(start, parse_recipe(GPTQ), samples, progress=False, device="cpu")
    model = copy.deepcopy(float_model)
    opts = 'level = "e2e", steps = 30, check = "greedy", check_clips = 1'
    report = quantize_model(model, parse_recipe(GPTQ + f'refine = "dwq"\nrefine_options = {{ {opts} }}\n'),
                            samples, progress=False, device="cpu")
    after, before = (edit_distance(ref, free_running_tokens(m, samples[0])) / len(ref) for m in (model, start))
    assert any(f"{before:.2%} -> {after:.2%}" in n for n in report.notes), (report.notes, before, after)
    assert after <= before
