"""quantize_model on a tiny random Whisper, for every built-in recipe."""

import json
import re

import numpy as np
import pytest
import torch
from torch import nn

from asrquant.cpu import describe_cpu
from asrquant.errors import AsrQuantError
from asrquant.models.whisper.calib import WhisperCalibAdapter
from asrquant.models.whisper.model import Whisper, WhisperDims
from asrquant.quant.calibrate import CalibSample, quantize_model, quantized_weights, single_language_warning
from asrquant.quant.linear import QuantLinear
from asrquant.quant.qtensor import dequantize
from asrquant.quant.recipe import builtin_recipes, load_recipe, parse_recipe

DIMS = WhisperDims(n_mels=80, n_audio_ctx=100, n_audio_state=64, n_audio_head=4, n_audio_layer=2,
                   n_vocab=100, n_text_ctx=32, n_text_state=64, n_text_head=4, n_text_layer=2)
# Recipes whose groups do not divide 64 inputs (groups of 128) run on twice the width.
WIDE = WhisperDims(n_mels=80, n_audio_ctx=100, n_audio_state=128, n_audio_head=4, n_audio_layer=2,
                   n_vocab=100, n_text_ctx=32, n_text_state=128, n_text_head=4, n_text_layer=2)
N_LINEARS = 2 * 6 + 2 * 10
# Relative error of the teacher-forced logits allowed per recipe (random weights, 64 states).
MAX_LOGIT_ERR = {"int8": 0.02, "mixed-8attn-4mlp": 0.08, "rtn-int4-g64": 0.15, "gptq-int4-g64": 0.1,
                 "gptq-int4-g64-emb8": 0.1, "gptq-int4-g64-emb4": 0.15,
                 "gptq-int4-g64-enc32": 0.1, "gptq-int4-g64-enc32-emb4": 0.15,
                 "gptq-int4-g64-enc32-emb4-dwq": 0.15, "awq-int4-g64": 0.1,
                 "nvfp4-awq-lite": 0.15, "mxfp4": 0.3, "ggml-q4_0-gptq": 0.15, "ggml-q5_0-gptq": 0.1,
                 "ggml-q8_0": 0.02, "gptq-int4-g128-sym": 0.15}


def tiny_whisper(dims: WhisperDims = DIMS) -> Whisper:
    torch.manual_seed(0)
    m = Whisper(dims)
    with torch.no_grad():
        m.decoder.positional_embedding.normal_(0, 0.02)
        m.decoder.token_embedding.weight.normal_(0, 0.5)
    return m.eval()


def random_samples(n: int) -> list[CalibSample]:
    """``n`` calibration samples of random log-mels and token ids (the same ones for the same n)."""
    rng = np.random.default_rng(0)
    return [CalibSample(rng.standard_normal((80, 200)).astype(np.float32),
                        rng.integers(0, 100, size=int(rng.integers(5, 15))).astype(np.int64)) for _ in range(n)]


@pytest.fixture(scope="module")
def samples():
    return random_samples(5)


def logits(model, sample):
    return model.teacher_forced_logits(torch.as_tensor(sample.mel)[None], torch.as_tensor(sample.tokens)[None])


@pytest.mark.parametrize("name", builtin_recipes())
def test_every_builtin_recipe(name, samples):
    recipe = load_recipe(name)
    groups = [r.scheme.group_size for r in recipe.rules]
    dims = WIDE if any(g > 0 and DIMS.n_audio_state % g for g in groups) else DIMS
    ref = logits(tiny_whisper(dims), samples[0])
    model = tiny_whisper(dims)
    report = quantize_model(model, recipe, samples, progress=False, device="cpu")
    err = ((logits(model, samples[0]) - ref).norm() / ref.norm()).item()
    assert err < MAX_LOGIT_ERR[name], err

    qws = quantized_weights(model)
    tables = ["decoder.token_embedding"] if recipe.embedding is not None else []
    n_quantized = N_LINEARS + len(tables)
    assert len(qws) == n_quantized == len(report.layers)
    assert {l.name for l in report.layers} == set(qws)
    for layer in report.layers:
        if layer.name in tables:  # by round to nearest, no output error; by GPTQ on the logits' inputs
            assert layer.scheme == recipe.embedding.scheme.name and layer.algorithm == recipe.embedding.algorithm
            assert (layer.rel_output_error is None) == (recipe.embedding.algorithm == "rtn")
            continue
        rule = recipe.rule_for(layer.name)
        if "e2e" in rule.refine_levels():  # refined after every Hessian is gone: its KL before -> after instead
            assert layer.refine_loss["e2e"][1] <= layer.refine_loss["e2e"][0]
        else:
            assert layer.rel_output_error is not None and 0 <= layer.rel_output_error < 0.5
        assert layer.bits_per_weight >= 4 and layer.seconds >= 0
        assert layer.scheme == rule.scheme.name
        assert layer.algorithm in {rule.algorithm, f"{rule.algorithm}+{rule.refine}"}
    assert report.n_samples == len(samples) and report.n_tokens["encoder"] == 5 * 100
    assert report.n_tokens["decoder"] == sum(len(s.tokens) for s in samples)
    md = report.to_markdown()
    assert all(l.name in md for l in report.layers) and name in md
    d = json.loads(json.dumps(report.to_dict()))
    assert d["quantized_layers"] == n_quantized and len(d["layers"]) == n_quantized
    # the modules are the reference: their cached weight is the dequantized representation
    for n, qw in qws.items():
        assert torch.equal(model.get_submodule(n).weight, dequantize(qw))


def test_rtn_needs_no_samples_and_ignores_are_kept():
    model = tiny_whisper()
    report = quantize_model(model, load_recipe("rtn-int4-g64"), None, progress=False)
    assert len(report.layers) == N_LINEARS and all(l.rel_output_error is None for l in report.layers)
    assert isinstance(model.decoder.token_embedding, nn.Embedding)
    with pytest.raises(AsrQuantError, match="needs calibration"):
        quantize_model(tiny_whisper(), load_recipe("gptq-int4-g64"), None, progress=False)


def test_the_report_names_what_a_build_depends_on():
    """The processor, torch and, for a learned refinement, the thread count decide a build's last
    bits, so the report records them, in its dict (quantization.json) and its markdown."""
    report = quantize_model(tiny_whisper(), load_recipe("rtn-int4-g64"), None, device="cpu", progress=False)
    build = json.loads(json.dumps(report.to_dict()))["build"]
    assert build == {"threads": torch.get_num_threads(), "processor": describe_cpu(), "torch": torch.__version__}
    assert f"Built with {build['threads']} threads on {describe_cpu()}" in report.to_markdown()


def test_a_gptq_build_is_the_same_at_any_thread_count():
    """At whisper-tiny's width, a 2-thread GEMM sums a batch's thousands of encoder frames (the
    Hessians) and a decoder Linear's few tokens in another order than one thread does, and GPTQ's
    roundings follow the last bits (without the fixed order this test fails). The statistics and
    the decoder's calibration passes run in one order, so the codes and scales do not differ."""
    dims = WhisperDims(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6, n_audio_layer=1,
                       n_vocab=100, n_text_ctx=32, n_text_state=384, n_text_head=6, n_text_layer=1)
    rng = np.random.default_rng(0)
    clips = [CalibSample(rng.standard_normal((80, 3000)).astype(np.float32),
                         rng.integers(0, 100, size=12).astype(np.int64)) for _ in range(4)]
    builds = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            model = tiny_whisper(dims)
            quantize_model(model, load_recipe("gptq-int4-g64"), clips, device="cpu", progress=False)
            builds.append(quantized_weights(model))
    finally:
        torch.set_num_threads(threads)
    for name, qw in builds[0].items():
        assert torch.equal(qw.codes, builds[1][name].codes), name
        assert torch.equal(qw.scales, builds[1][name].scales), name


def test_gptq_and_awq_beat_rtn_end_to_end(samples):
    errs = {}
    for name in ("rtn-int4-g64", "gptq-int4-g64", "awq-int4-g64"):
        errs[name] = quantize_model(tiny_whisper(), load_recipe(name), samples, progress=False).mean_rel_output_error
    assert errs["gptq-int4-g64"] < errs["rtn-int4-g64"]
    assert errs["awq-int4-g64"] < errs["rtn-int4-g64"]


def test_awq_scales_folded_into_layernorms(samples):
    model = tiny_whisper()
    ln_before = model.encoder.blocks[0].attn_ln.weight.detach().clone()
    quantize_model(model, load_recipe("awq-int4-g64"), samples, progress=False)
    qws = quantized_weights(model)
    # consumers of a LayerNorm share one folded scale; the others keep theirs as input_scale
    assert qws["encoder.blocks.0.attn.query"].input_scale is None
    assert qws["encoder.blocks.0.attn.query"].info["folded_into"] == "encoder.blocks.0.attn_ln"
    assert qws["encoder.blocks.0.mlp.fc2"].input_scale is not None
    assert qws["decoder.blocks.1.cross_attn.key"].input_scale is not None
    assert not torch.equal(model.encoder.blocks[0].attn_ln.weight, ln_before)
    assert isinstance(model.encoder.blocks[0].mlp.fc2, QuantLinear)


def test_fold_keeps_untargeted_consumers_exact(samples, tmp_path):
    p = tmp_path / "awq-no-key.toml"
    p.write_text('ignore = ["*.attn.key"]\n[calibration]\nclips = 8\n[[rules]]\nkind = "encoder"\nbits = 4\n'
                 'group_size = 32\nalgorithm = "awq"\n')
    model = tiny_whisper()
    key_w = model.encoder.blocks[0].attn.key.weight.detach().clone()
    ln = model.encoder.blocks[0].attn_ln
    h = torch.randn(3, 64)
    key_out = model.encoder.blocks[0].attn.key(ln(h))
    report = quantize_model(model, load_recipe(p), samples, progress=False)
    assert len(report.layers) == 2 * 5 and "encoder.blocks.0.attn.key" in report.kept
    assert not torch.equal(model.encoder.blocks[0].attn.key.weight, key_w)  # absorbed the folded scale
    torch.testing.assert_close(model.encoder.blocks[0].attn.key(ln(h)), key_out, rtol=1e-4, atol=1e-5)


def test_adapter_grouping_is_checked(samples):
    class Wrong(WhisperCalibAdapter):
        def blocks(self):
            for b in super().blocks():
                b.groups[1].linears.append(b.groups[0].linears[0])  # out does not read q's input
                yield b

    model = tiny_whisper()
    with pytest.raises(RuntimeError, match="do not read the same inputs"):
        quantize_model(model, load_recipe("gptq-int4-g64"), samples, progress=False,
                       adapter=Wrong(model, samples, device="cpu"))


def test_bad_samples_are_refused():
    bad_mel = [CalibSample(np.zeros((128, 200), np.float32), np.arange(5))]
    with pytest.raises(AsrQuantError, match="mel must be"):
        quantize_model(tiny_whisper(), load_recipe("gptq-int4-g64"), bad_mel, progress=False)
    bad_tok = [CalibSample(np.zeros((80, 200), np.float32), np.arange(40))]
    with pytest.raises(AsrQuantError, match="tokens must be"):
        quantize_model(tiny_whisper(), load_recipe("gptq-int4-g64"), bad_tok, progress=False)


def test_awq_without_folding_keeps_input_scales(samples):
    model = tiny_whisper()
    ln_before = model.encoder.blocks[0].attn_ln.weight.detach().clone()
    quantize_model(model, load_recipe("nvfp4-awq-lite"), samples, progress=False, fold_awq=False)
    qws = quantized_weights(model)
    assert all(qw.input_scale is not None for qw in qws.values())
    assert torch.equal(model.encoder.blocks[0].attn_ln.weight, ln_before)


def test_single_language_calibration_is_warned_once_naming_the_manifest():
    line = single_language_warning("cal/manifest.jsonl", ["zh", "zh", None])
    assert line.startswith("asrquant: warning: cal/manifest.jsonl: every calibration clip is 'zh'")
    assert "\n" not in line
    assert "no calibration clip has a 'lang' field" in single_language_warning("m.jsonl", [None, None])
    assert single_language_warning("m.jsonl", ["en", "zh", None]) is None


FLOAT_INPUTS = """name = "gptq-float-inputs"
[calibration]
clips = 64
[[rules]]
format = "int"
bits = 4
group_size = 32
algorithm = "gptq"
options = {{ float_inputs = {} }}
"""


def test_gptq_float_inputs_brings_the_calibration_clips_closer_to_float():
    """With ``float_inputs`` every Linear is fitted to the float model's output from the inputs the
    quantized model gives it (a float copy runs beside it); on its calibration clips the quantized
    model's next-token distributions come closer to float than plain GPTQ's. The first group of
    each stack reads what the float model reads (the log-mel's convolutions and the token table
    stay float here): its weights are not shifted; every later decoder Linear's is."""
    samples = random_samples(8)
    ref = tiny_whisper()
    kl, shifts = {}, {}
    for fi in (False, True):
        model = tiny_whisper()
        report = quantize_model(model, parse_recipe(FLOAT_INPUTS.format(str(fi).lower())), samples, progress=False,
                                device="cpu")
        with torch.no_grad():
            kl[fi] = np.mean([torch.nn.functional.kl_div(torch.log_softmax(logits(model, s), -1),
                                                         torch.log_softmax(logits(ref, s), -1), log_target=True,
                                                         reduction="batchmean").item() for s in samples])
        shifts[fi] = {l.name: l.note for l in report.layers}
    assert kl[True] < 0.8 * kl[False], kl
    assert not any("float_inputs_shift" in note for note in shifts[False].values())
    shift = {n: float(re.search(r"float_inputs_shift=([0-9.e-]+)", note).group(1)) for n, note in shifts[True].items()}
    first = {f"{part}.blocks.0.attn.{p}" for part in ("encoder", "decoder") for p in ("query", "key", "value")}
    assert all(shift[n] == 0 for n in first)
    assert all(v > 0 for n, v in shift.items() if n.startswith("decoder.") and n not in first)


def test_gptq_float_inputs_needs_the_familys_adapter(samples):
    model = tiny_whisper()
    with pytest.raises(AsrQuantError, match="float_inputs"):
        quantize_model(model, parse_recipe(FLOAT_INPUTS.format("true")), samples, progress=False,
                       adapter=WhisperCalibAdapter(model, samples, device="cpu"))
