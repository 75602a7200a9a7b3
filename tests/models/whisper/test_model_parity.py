"""Our Whisper against transformers' WhisperForConditionalGeneration built from the same weights.

Real checkpoints (tiny.en, base), real audio (shared/data/vitw8), transformers' own feature
extractor for the mel. Teacher-forced logits on the reference transcripts must agree to 1e-3;
greedy decoding (argmax, no suppression, forced prompt) must give the same tokens. Each encoder
runs once per clip; the decoders of both sides then work from their own encoder's output.
"""

from __future__ import annotations

import pytest
import torch

from .conftest import VITW8, needs_base, needs_tiny, needs_transformers, needs_vitw8, vitw8_rows

pytestmark = [pytest.mark.slow, needs_transformers, needs_vitw8]
MAX_NEW_TOKENS = 48
N_EAGER = 2  # clips also checked against transformers' eager (non-fused) attention


def _prompt(ckpt, tok) -> list[int]:
    names = ["startoftranscript", "en", "transcribe", "notimestamps"] if ckpt.multilingual else \
        ["startoftranscript", "notimestamps"]
    return [tok.token_to_id(f"<|{n}|>") for n in names]


@pytest.fixture(scope="module", params=[pytest.param("tiny", marks=needs_tiny),
                                        pytest.param("base", marks=needs_base)])
def setup(request):
    """(ckpt, transformers model, prompt, eot, clips); a clip: id, mel, tokens, our/their encoder output."""
    import soundfile as sf
    from tokenizers import Tokenizer
    from transformers import WhisperFeatureExtractor

    from asrquant.models.whisper.load import build_transformers_whisper

    ckpt = request.getfixturevalue("tiny_en" if request.param == "tiny" else "base")
    hf = build_transformers_whisper(ckpt)
    fe = WhisperFeatureExtractor(feature_size=ckpt.dims.n_mels)
    tok = Tokenizer.from_file(str(ckpt.tokenizer_json))
    prompt, eot = _prompt(ckpt, tok), tok.token_to_id("<|endoftext|>")
    clips = []
    with torch.no_grad():
        for row in vitw8_rows():
            audio, sr = sf.read(VITW8 / row["audio"], dtype="float32")
            assert sr == 16000 and audio.ndim == 1
            mel = torch.from_numpy(fe(audio, sampling_rate=16000, return_tensors="np").input_features)
            tokens = prompt + tok.encode(" " + row["text"].strip(), add_special_tokens=False).ids + [eot]
            ours, theirs = ckpt.model.encoder(mel), hf.model.encoder(mel).last_hidden_state
            clips.append((row["id"], mel, tokens, ours, theirs))
    return ckpt, hf, prompt, eot, clips


@torch.no_grad()
def _our_logits(model, audio_features, tokens):
    cross_k, cross_v = model.decoder.cross_kv(audio_features)
    past_k, past_v = model.decoder.empty_cache(tokens.shape[0])
    return model.decoder(tokens, past_k, past_v, cross_k, cross_v)[0]


@torch.no_grad()
def test_encoder_and_teacher_forced_logits(setup):
    ckpt, hf, _, _, clips = setup
    from asrquant.models.whisper.load import build_transformers_whisper

    enc_diff = logit_diff = eager_diff = 0.0
    for clip_id, _, tokens, ours_enc, their_enc in clips:
        tokens = torch.tensor([tokens])
        enc_diff = max(enc_diff, (ours_enc - their_enc).abs().max().item())
        ours = _our_logits(ckpt.model, ours_enc, tokens)
        ref = hf(encoder_outputs=(their_enc,), decoder_input_ids=tokens).logits
        diff = (ours - ref).abs().max().item()
        logit_diff = max(logit_diff, diff)
        assert diff <= 1e-3, f"{clip_id}: max |logit diff| {diff:.2e} vs transformers"
        assert torch.equal(ours.argmax(-1), ref.argmax(-1)), clip_id
    eager = build_transformers_whisper(ckpt, attn_implementation="eager")
    for clip_id, mel, tokens, _, _ in clips[:N_EAGER]:
        tokens = torch.tensor([tokens])
        ref = eager(input_features=mel, decoder_input_ids=tokens).logits
        eager_diff = max(eager_diff, (ckpt.model.teacher_forced_logits(mel, tokens) - ref).abs().max().item())
        assert eager_diff <= 1e-3, f"{clip_id}: max |logit diff| {eager_diff:.2e} vs transformers (eager)"
    print(f"\n{ckpt.source}: {len(clips)} clips: max |encoder diff| {enc_diff:.2e}, max |logit diff| "
          f"{logit_diff:.2e} (sdpa), {eager_diff:.2e} (eager attention, {N_EAGER} clips)")


@torch.no_grad()
def _greedy(model, audio_features, prompt, eot, max_new_tokens):
    """Argmax decoding with the explicit KV cache: the simplest loop over our model."""
    cross_k, cross_v = model.decoder.cross_kv(audio_features)
    past_k, past_v = model.decoder.empty_cache(1)
    tokens, out = torch.tensor([prompt]), []
    for _ in range(max_new_tokens):
        logits, new_k, new_v = model.decoder(tokens, past_k, past_v, cross_k, cross_v)
        past_k, past_v = torch.cat([past_k, new_k], 2), torch.cat([past_v, new_v], 2)
        out.append(int(logits[0, -1].argmax()))
        if out[-1] == eot:
            break
        tokens = torch.tensor([[out[-1]]])
    return out


@torch.no_grad()
def test_greedy_tokens_match_transformers_generate(setup):
    from transformers.modeling_outputs import BaseModelOutput

    ckpt, hf, prompt, eot, clips = setup
    hf.generation_config.suppress_tokens = None
    hf.generation_config.begin_suppress_tokens = None
    kwargs = {"language": "en", "task": "transcribe"} if ckpt.multilingual else {}
    n_tokens = 0
    for clip_id, _, _, ours_enc, their_enc in clips:
        ours = _greedy(ckpt.model, ours_enc, prompt, eot, MAX_NEW_TOKENS)
        out = hf.generate(encoder_outputs=BaseModelOutput(last_hidden_state=their_enc), return_timestamps=False,
                          max_new_tokens=MAX_NEW_TOKENS, return_dict_in_generate=True, **kwargs)
        seq = out.sequences[0].tolist()
        assert seq[: len(prompt)] == prompt, f"{clip_id}: transformers used the prompt {seq[:len(prompt)]}"
        assert seq[len(prompt):] == ours, f"{clip_id}: greedy tokens differ"
        n_tokens += len(ours)
    print(f"\n{ckpt.source}: greedy tokens identical on {len(clips)} clips ({n_tokens} tokens)")
