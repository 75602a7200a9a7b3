"""The torch Qwen3-ASR session through the shared decoding loop: the same tokens as the model's
own greedy loop (float and fake-quant), and the transcriber end to end on a checkpoint directory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asrquant.decoding import DecodeOptions, decode
from asrquant.models.qwen3_asr.features import qwen3_asr_log_mel
from asrquant.models.qwen3_asr.load import load_qwen3_asr
from asrquant.models.qwen3_asr.tokenizer import parse_output
from asrquant.models.qwen3_asr.torch_session import Qwen3ASRTorchSession, Qwen3ASRTranscriber, qwen3_asr_rules
from asrquant.quant.calibrate import quantize_model
from asrquant.quant.recipe import load_recipe

from .qwen3_asr_fixture import random_model, small_dims, tone, write_random_checkpoint

EOS = (151645, 151643)


@pytest.fixture(scope="module")
def qwen_ckpt_dir(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("qwen3asr"), shards=1)[0]


def test_end_logit_is_the_larger_of_both():
    rules = qwen3_asr_rules(EOS)
    logits = np.zeros((1, 151936), np.float32)
    logits[0, 151643] = 5.0
    out = rules.apply(logits, first=False)
    assert out[0, 151645] == 5.0 and out[0, 151643] == -np.inf and int(out.argmax()) == 151645


def test_session_matches_model_greedy():
    model = random_model(small_dims(), seed=4)
    quantize_model(model, load_recipe("mixed-8attn-4mlp"), progress=False, device="cpu")  # RTN: no clips needed
    session = Qwen3ASRTorchSession(model)
    for i, seconds in enumerate((1.1, 2.4)):
        mel = qwen3_asr_log_mel(tone(seconds, seed=i))
        n = model.dims.n_audio_tokens(mel.shape[1])
        prompt = [151644, 198, 151669] + [151676] * n + [151670, 198]
        want = model.greedy(torch.from_numpy(mel), prompt, EOS, max_new_tokens=12)
        got = decode(session, session.encode(mel), prompt, qwen3_asr_rules(EOS),
                     DecodeOptions(max_new_tokens=12, loop_guard=False))
        assert got.tokens == [t for t in want if t not in EOS]


def test_transcriber_on_checkpoint_dir(qwen_ckpt_dir):
    ckpt = load_qwen3_asr(qwen_ckpt_dir)
    tr = Qwen3ASRTranscriber(Qwen3ASRTorchSession(ckpt.model), ckpt.tokenizer())
    out = tr.transcribe(tone(1.5), language="en", options=DecodeOptions(max_new_tokens=6, loop_guard=False))
    assert 0 < len(out.result.tokens) <= 6 and out.language == "English"
    assert out.text == parse_output(ckpt.tokenizer().decode(out.result.tokens), "English")[1]
