"""Qwen3-ASR parity against the reference implementation of the ``qwen-asr`` package.

Runs only where qwen_asr imports: scripts/test-qwen-parity.sh builds .venv-qwen (qwen-asr pins
its own transformers, kept out of the main environment) and runs this file there. Everywhere
else it is skipped.

One small random checkpoint is written in the published layout (sharded safetensors with the
``thinker.`` names, config.json as published, tokenizer and preprocessor files); the reference
loads it with its own from_pretrained (transformers AutoModel / AutoProcessor, as qwen-asr's
Qwen3ASRModel does) and we load it with load_qwen3_asr, so both sides hold the same random
weights through their own loaders. Small sizes, but the real chunking (100-frame chunks,
8-chunk attention windows), the real vocabulary size and the real special-token ids.

Bounds: encoder output max abs difference <= 1e-4, decoder logits <= 1e-3, greedy tokens
identical, prompt ids identical, features <= 1e-4.

What the reference does that matters here: with the default (sdpa) or eager attention its
audio encoder does not apply the 104-token attention windows at all (the layers get
``cu_seqlens`` but no mask; only flash-attention 2 and the vLLM backend use the windows), so
for clips over 8 s (800 frames) its stock transformers path attends across the whole clip.
The model was trained with the windows, vLLM serves it with them, and this implementation
applies them. Up to 104 tokens the two agree with the stock reference; beyond, the comparison
is against the reference with its own block-diagonal mask (its ``_prepare_attention_mask``,
written for exactly this) passed to its layers.
"""

from __future__ import annotations

import pytest
import torch

qwen_asr = pytest.importorskip("qwen_asr",
                               reason="qwen-asr is installed only in .venv-qwen (scripts/test-qwen-parity.sh)")

from asrquant.models.qwen3_asr.features import qwen3_asr_log_mel  # noqa: E402
from asrquant.models.qwen3_asr.load import load_qwen3_asr  # noqa: E402
from asrquant.models.qwen3_asr.tokenizer import Qwen3ASRTokenizer  # noqa: E402

from .qwen3_asr_fixture import small_dims, tone, write_random_checkpoint  # noqa: E402

ENC_TOL, LOGIT_TOL, FEAT_TOL = 1e-4, 1e-3, 1e-4


def max_abs(what: str, diff) -> float:
    """The largest absolute difference, printed so the figures can be quoted (pytest -s)."""
    value = float(abs(diff).max())
    print(f"PARITY {what}: max abs difference {value:.2e}")
    return value


@pytest.fixture(scope="module", params=[False, True], ids=["untied", "tied"])
def pair(request, tmp_path_factory):
    """(reference Qwen3ASRModel, our checkpoint) over the same files."""
    from qwen_asr import Qwen3ASRModel

    d = tmp_path_factory.mktemp("ckpt")
    write_random_checkpoint(d, small_dims(tie=request.param), seed=7, shards=3)
    ref = Qwen3ASRModel.from_pretrained(str(d), dtype=torch.float32, device_map="cpu", max_new_tokens=24)
    ref.model.eval()
    ours = load_qwen3_asr(d)
    return ref, ours


def _windowed_reference_encoder(ref):
    """The reference audio encoder with its own window mask passed to its layers."""
    enc = ref.model.thinker.audio_tower
    saved = [layer.forward for layer in enc.layers]

    def wrap(orig):
        def forward(hidden_states, cu_seqlens, attention_mask=None, **kw):
            if attention_mask is None:
                attention_mask = enc._prepare_attention_mask(hidden_states, cu_seqlens)
            return orig(hidden_states, cu_seqlens, attention_mask=attention_mask, **kw)

        return forward

    for layer, orig in zip(enc.layers, saved):
        layer.forward = wrap(orig)
    return enc, saved


@torch.no_grad()
@pytest.mark.parametrize("frames", [37, 99, 100, 230, 555, 800])
def test_encoder_matches_reference_single_window(pair, frames):
    ref, ours = pair
    mel = torch.randn(128, frames, generator=torch.Generator().manual_seed(frames))
    want = ref.model.thinker.audio_tower(mel, feature_lens=torch.tensor([frames])).last_hidden_state
    got = ours.model.encode(mel)
    assert got.shape == want.shape == (ours.dims.n_audio_tokens(frames), ours.dims.hidden_size)
    assert max_abs(f"encoder {frames} frames", got - want) <= ENC_TOL


@torch.no_grad()
@pytest.mark.parametrize("frames", [801, 1001, 2345, 3000])
def test_encoder_matches_windowed_reference(pair, frames):
    ref, ours = pair
    mel = torch.randn(128, frames, generator=torch.Generator().manual_seed(frames))
    enc, saved = _windowed_reference_encoder(ref)
    try:
        want = enc(mel, feature_lens=torch.tensor([frames])).last_hidden_state
    finally:
        for layer, orig in zip(enc.layers, saved):
            layer.forward = orig
    got = ours.model.encode(mel)
    assert got.shape == want.shape
    assert max_abs(f"encoder {frames} frames (windowed)", got - want) <= ENC_TOL


@pytest.mark.parametrize("seconds", [0.5, 1.234, 3.3, 7.99, 12.0])
def test_features_and_prompt_match_reference_processor(pair, seconds):
    ref, ours = pair
    audio = tone(seconds, seed=int(seconds * 10))
    tok = Qwen3ASRTokenizer(ours.tokenizer_json)
    mel = qwen3_asr_log_mel(audio)
    for language in (None, "English"):
        text = ref._build_text_prompt(context="", force_language=language)
        inputs = ref.processor(text=[text], audio=[audio], return_tensors="pt", padding=True)
        feats = inputs["input_features"][0].numpy()
        assert feats.shape == mel.shape
        assert max_abs(f"features {seconds} s", feats - mel) <= FEAT_TOL
        assert inputs["input_ids"][0].tolist() == tok.prompt_ids(ours.dims.n_audio_tokens(mel.shape[1]),
                                                                 language=language)
    context = "the cat sat on the mat"
    inputs = ref.processor(text=[ref._build_text_prompt(context=context, force_language=None)], audio=[audio],
                           return_tensors="pt")
    assert inputs["input_ids"][0].tolist() == tok.prompt_ids(ours.dims.n_audio_tokens(mel.shape[1]), context=context)


def _inputs(ref, audio, language=None):
    text = ref._build_text_prompt(context="", force_language=language)
    return ref.processor(text=[text], audio=[audio], return_tensors="pt", padding=True)


@torch.no_grad()
@pytest.mark.parametrize("seconds", [1.0, 6.5])
def test_decoder_logits_match_reference(pair, seconds):
    ref, ours = pair
    audio = tone(seconds, seed=3)
    inputs = _inputs(ref, audio)
    ids = inputs["input_ids"]
    cont = torch.tensor([[11, 22, 151704, 33, 44, 55]])  # a continuation after the prompt
    full = torch.cat([ids, cont], 1)
    want = ref.model.thinker(
        input_ids=full,
        input_features=inputs["input_features"],
        feature_attention_mask=inputs["feature_attention_mask"],
        attention_mask=torch.ones_like(full),
    ).logits
    got = ours.model.teacher_forced_logits(torch.from_numpy(qwen3_asr_log_mel(audio)), full)
    assert got.shape == want.shape == (1, full.shape[1], 151936)
    assert max_abs(f"decoder logits {seconds} s", got - want) <= LOGIT_TOL


@torch.no_grad()
@pytest.mark.parametrize("language", [None, "English"])
@pytest.mark.parametrize("seconds", [2.0, 7.0])
def test_greedy_tokens_match_reference(pair, seconds, language):
    ref, ours = pair
    audio = tone(seconds, seed=11)
    inputs = _inputs(ref, audio, language)
    out = ref.model.generate(**inputs, max_new_tokens=24)
    want = out.sequences[0, inputs["input_ids"].shape[1] :].tolist()
    tok = Qwen3ASRTokenizer(ours.tokenizer_json)
    mel = torch.from_numpy(qwen3_asr_log_mel(audio))
    prompt = tok.prompt_ids(ours.dims.n_audio_tokens(mel.shape[1]), language=language)
    got = ours.model.greedy(mel, prompt, ours.eos_ids, max_new_tokens=24)
    assert got == want[: len(got)] and len(got) == len(want)
    if not ours.dims.tie_word_embeddings:  # random tied models tend to repeat one token
        assert len(set(got)) > 1, got  # the cache is exercised on a varied sequence


@torch.no_grad()
def test_transcribe_matches_reference(pair):
    """qwen-asr's whole transcribe() (load audio, prompt, generate, decode, parse) against ours,
    on output too short for its repetition clean-up to apply."""
    ref, ours = pair
    audio = tone(2.5, seed=5)
    tok = Qwen3ASRTokenizer(ours.tokenizer_json)
    mel = torch.from_numpy(qwen3_asr_log_mel(audio))
    ref.max_new_tokens = 12
    for language in (None, "English"):
        want = ref.transcribe((audio, 16000), language=language)[0]
        prompt = tok.prompt_ids(ours.dims.n_audio_tokens(mel.shape[1]), language=language)
        got = tok.transcript(ours.model.greedy(mel, prompt, ours.eos_ids, max_new_tokens=12), language)
        assert got == (want.language, want.text)
