"""The DWQ refinement on the small random Qwen3-ASR: closer to float than its GPTQ start by the
teacher-forced KL, block by block and end to end."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

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
