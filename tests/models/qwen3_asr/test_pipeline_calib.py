"""Calibrate + quantize the small random Qwen3-ASR with two recipes: every targeted Linear is
reached by calibration data, and the fake-quant model stays close to the float one."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from asrquant.errors import AsrQuantError
from asrquant.models.qwen3_asr.calib import Qwen3ASRCalibAdapter
from asrquant.models.qwen3_asr.features import qwen3_asr_log_mel
from asrquant.quant.calibrate import CalibSample, quantize_model, quantized_weights
from asrquant.quant.recipe import load_recipe, parse_recipe

from .qwen3_asr_fixture import random_model, small_dims, tone

RECIPES = ("gptq-int4-g64", "mixed-8attn-4mlp")
# Relative error of the teacher-forced logits allowed (random weights, 64-wide model).
MAX_LOGIT_ERR = {"gptq-int4-g64": 0.15, "mixed-8attn-4mlp": 0.2}


def calib_samples(dims, seconds=(1.3, 2.2, 3.1)) -> list[CalibSample]:
    """Synthetic clips: tones as audio, a prompt-shaped sequence with the right number of
    <|audio_pad|> placeholders, a few text ids and <|im_end|>."""
    rng = np.random.default_rng(0)
    out = []
    for i, s in enumerate(seconds):
        mel = qwen3_asr_log_mel(tone(s, seed=i))
        n = dims.n_audio_tokens(mel.shape[1])
        text = rng.integers(0, 300, size=8).tolist()
        ids = ([151644, 8948, 198, dims.audio_start_token_id] + [dims.audio_token_id] * n
               + [dims.audio_end_token_id, 198] + text + [151645])
        out.append(CalibSample(mel, np.array(ids, dtype=np.int64), len(ids) - len(text) - 1))
    return out


@pytest.fixture(scope="module")
def float_model():
    return random_model(small_dims(), seed=2)


@pytest.mark.parametrize("recipe", RECIPES)
def test_quantize_qwen3_asr(float_model, recipe):
    samples = calib_samples(float_model.dims)
    model = copy.deepcopy(float_model)
    report = quantize_model(model, load_recipe(recipe), samples, progress=False, device="cpu")
    qw = quantized_weights(model)
    # Every Linear but the (tied) lm_head is targeted by gptq; the mixed recipe leaves the
    # encoder's conv_out / proj1 / proj2 in float (neither attention nor MLP).
    kept = ({"lm_head"} if recipe.startswith("gptq")
            else {"lm_head", "audio_tower.conv_out", "audio_tower.proj1", "audio_tower.proj2"})
    assert set(report.kept) == kept
    assert len(qw) == len(report.layers) == 2 * 6 + 2 * 7 + (3 if recipe.startswith("gptq") else 0)
    assert not any("no calibration data" in n for n in report.notes)  # every block was reached
    assert all(l.rel_output_error is not None for l in report.layers)
    assert report.n_tokens["audio_tower"] > 0 and report.n_tokens["model"] == sum(len(s.tokens) for s in samples)
    with torch.no_grad():
        for s in samples:
            mel, ids = torch.from_numpy(s.mel), torch.from_numpy(s.tokens)[None]
            want = float_model.teacher_forced_logits(mel, ids)
            got = model.teacher_forced_logits(mel, ids)
            err = ((got - want).norm() / want.norm()).item()
            assert err < MAX_LOGIT_ERR[recipe], err


def test_bad_sample_names_the_problem(float_model):
    s = calib_samples(float_model.dims, (1.0,))[0]
    bad = CalibSample(s.mel, s.tokens[s.tokens != float_model.dims.audio_token_id])
    with pytest.raises(AsrQuantError, match="<|audio_pad|>"):
        Qwen3ASRCalibAdapter(float_model, [bad])


def test_a_gptq_build_is_the_same_at_any_thread_count():
    """At a width where a 2-thread GEMM over an attention window's few frames (or a few tokens)
    sums in another order than one thread, every Linear after the first encoder layer took other
    GPTQ roundings at 1 and 2 threads (without the adapter's one-thread passes this test fails).
    The calibration passes run on one thread, so the codes and scales are the same."""
    dims = small_dims(audio_d_model=384, audio_ffn_dim=1024, audio_output_dim=384, audio_heads=6,
                      hidden_size=384, intermediate_size=1024, n_heads=6, n_kv_heads=2, head_dim=64)
    samples = calib_samples(dims, seconds=(4.0, 6.5, 9.0))
    builds = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            model = random_model(dims, seed=2)
            quantize_model(model, load_recipe("gptq-int4-g64"), samples, device="cpu", progress=False)
            builds.append(quantized_weights(model))
    finally:
        torch.set_num_threads(threads)
    assert len(builds[0]) > 20
    for name, qw in builds[0].items():
        assert torch.equal(qw.codes, builds[1][name].codes), name
        assert torch.equal(qw.scales, builds[1][name].scales), name


def test_gptq_float_inputs_is_refused_by_name(float_model):
    """Qwen3-ASR's calibration adapter runs its blocks over every clip at once, not one sample at a
    time, so no float-model inputs are measured: the option is refused with its name, not ignored."""
    recipe = parse_recipe('[calibration]\nclips = 8\n[[rules]]\nformat = "int"\nbits = 4\ngroup_size = 32\n'
                          'algorithm = "gptq"\noptions = { float_inputs = true }\n')
    with pytest.raises(AsrQuantError, match="float_inputs"):
        quantize_model(copy.deepcopy(float_model), recipe, calib_samples(float_model.dims, (1.3,)), progress=False,
                       device="cpu")
