"""The free-running check of a refinement (dwq's check = "greedy") decodes as transcription does."""

import numpy as np
from onnx_fixtures import noisy_tone

from asrquant.features import log_mel
from asrquant.models.whisper.calib import N_TIMESTAMPS, free_running_tokens
from asrquant.models.whisper.tokenizer import WhisperTokenizer
from asrquant.models.whisper.torch_session import WhisperTorchSession
from asrquant.models.whisper.transcribe import WhisperGeneration, WhisperTranscriber
from asrquant.quant.calibrate import CalibSample


def test_free_running_tokens_are_the_greedy_transcription(small_ckpt):
    """From the sample's prompt, with timestamps suppressed (the vocabulary's last N_TIMESTAMPS ids)
    and the loop guard on: the tokens a greedy transcription of the same audio gives."""
    model = small_ckpt.model
    tok = WhisperTokenizer(small_ckpt.tokenizer_json, small_ckpt.multilingual)
    assert model.dims.n_vocab - N_TIMESTAMPS == tok.timestamp_begin
    generation = WhisperGeneration((), (), model.dims.n_mels)  # no checkpoint symbols: the check suppresses none
    transcriber = WhisperTranscriber(WhisperTorchSession(model), tok, generation)
    for seed in range(3):
        audio = noisy_tone(2.0, 300 + 200 * seed, seed=seed)
        prompt = tok.prompt(None)
        sample = CalibSample(log_mel(audio), np.asarray(prompt + [tok.eot], dtype=np.int64), len(prompt))
        tokens = free_running_tokens(model, sample)
        assert tokens and tokens == transcriber.transcribe(audio).tokens
