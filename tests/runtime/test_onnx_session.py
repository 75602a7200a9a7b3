"""The onnxruntime session against the torch session on a small random Whisper, and without torch."""

import subprocess
import sys

import numpy as np
import pytest
from onnx_fixtures import noisy_tone

from asrquant.features import log_mel
from asrquant.models.whisper.onnx_session import MIN_CAPACITY, open_onnx_artifact
from asrquant.models.whisper.torch_session import WhisperTorchSession


def audio(seconds=3.0, seed=0):
    return noisy_tone(seconds, 220, seed)


@pytest.fixture(scope="module")
def sessions(small_ckpt, small_artifact):
    transcriber, _ = open_onnx_artifact(small_artifact, threads=1)
    return WhisperTorchSession(small_ckpt.model), transcriber.session


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())


def test_encoder_matches_torch(sessions):
    ref, ours = sessions
    mel = log_mel(audio())
    k, v = ref.encode(mel)
    cross = ours.encode(mel)
    L, _, H, dh, A = cross.k.shape
    close(cross.k, k.reshape(L, 1, A, H, dh).permute(0, 1, 3, 4, 2).numpy())
    close(cross.v, v.reshape(L, 1, A, H, dh).permute(0, 1, 3, 2, 4).numpy())


def test_steps_match_torch_across_buffer_growth_and_beam_reorder(sessions):
    """Teacher-forced: both sessions fed the same tokens, 3 rows, past one capacity doubling."""
    ref, ours = sessions
    mel = log_mel(audio())
    prompt = np.array([50257, 50362], dtype=np.int64)
    r_logits, r_cache = ref.prefill(ref.encode(mel), prompt, 3)
    o_logits, o_cache = ours.prefill(ours.encode(mel), prompt, 3)
    close(o_logits, r_logits)
    rng = np.random.default_rng(1)
    for i in range(MIN_CAPACITY + 4):
        if i % 7 == 3:  # a beam reorder, rows repeated and swapped
            rows = rng.integers(0, 3, 3)
            r_cache, o_cache = ref.reorder(r_cache, rows), ours.reorder(o_cache, rows)
        tokens = rng.integers(0, 50000, 3)
        r_logits, r_cache = ref.step(tokens, r_cache)
        o_logits, o_cache = ours.step(tokens, o_cache)
        close(o_logits, r_logits)
    assert o_cache.capacity == 2 * MIN_CAPACITY and o_cache.length == len(prompt) + MIN_CAPACITY + 4


def test_prefill_graph_matches_torch(sessions, small_artifact):
    """decoder_prefill (not used by our runner, kept for other runtimes) gives the torch prompt pass."""
    import onnxruntime as ort

    ref, ours = sessions
    mel = log_mel(audio())
    cross = ours.encode(mel)
    n = cross.k.shape[0]
    prompt = np.array([[50257, 50362, 440]], dtype=np.int64)
    graph = ort.InferenceSession(str(small_artifact / "decoder_prefill.onnx"), providers=["CPUExecutionProvider"])
    logits, k, v = graph.run(None, {"tokens": prompt, **{f"cross_k_{i}": cross.k[i] for i in range(n)},
                                    **{f"cross_v_{i}": cross.v[i] for i in range(n)}})
    r_logits, (r_k, r_v, _, _) = ref.prefill(ref.encode(mel), prompt[0], 1)
    close(logits, r_logits)
    L, B, H, dh, T = k.shape
    close(k, r_k.reshape(L, B, T, H, dh).permute(0, 1, 3, 4, 2).numpy())
    close(v, r_v.reshape(L, B, T, H, dh).permute(0, 1, 3, 2, 4).numpy())


def test_step_writes_in_place_and_does_not_rebind(sessions):
    _, ours = sessions
    _, cache = ours.prefill(ours.encode(log_mel(audio())), np.array([50257, 50362]), 1)
    buffer, binding = cache.k, cache.io
    ours.step(np.array([11]), cache)
    assert cache.k is buffer and cache.io is binding  # same memory, same binding
    assert np.any(cache.k[..., 2] != 0) and not np.any(cache.k[..., 3:])


def test_transcribe_greedy_and_beam_run(small_artifact):
    transcriber, size = open_onnx_artifact(small_artifact, threads=1)
    assert size > 0
    for beam in (1, 3):
        out = transcriber.transcribe(audio(), beam_size=beam, max_new_tokens=12)
        assert len(out.tokens) <= 12 and out.stops


def test_runner_never_imports_torch(small_artifact):
    code = (
        "import sys\n"
        "import numpy as np\n"
        "import asrquant.models.whisper.onnx_session\n"
        "assert 'torch' not in sys.modules, 'import pulled in torch'\n"
        "from asrquant.engines import open_engine\n"
        f"engine = open_engine({str(small_artifact)!r}, threads=1)\n"
        "assert engine.engine == 'asrquant-onnx'\n"
        "engine.transcribe(np.zeros(16000, np.float32), None, 1, 4)\n"
        "assert 'torch' not in sys.modules, 'transcribing pulled in torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_windows_encoded_as_one_batch_equal_one_at_a_time(sessions):
    """Long audio's windows through the encoder in one run give each window's own output exactly."""
    _, ours = sessions
    mels = [log_mel(audio(30.0, seed)) for seed in range(3)]
    batched = ours.encode_batch(mels)
    for mel, b in zip(mels, batched):
        one = ours.encode(mel)
        assert b.k.shape == one.k.shape and b.k.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(b.k, one.k)
        np.testing.assert_array_equal(b.v, one.v)


def test_long_audio_transcribes_the_same_batched_or_not(small_artifact, monkeypatch):
    from asrquant.models.whisper import transcribe

    transcriber, _ = open_onnx_artifact(small_artifact, threads=1)
    long = np.concatenate([audio(30.0, 0), audio(30.0, 1), audio(12.0, 2)])
    monkeypatch.setattr(transcribe, "ENCODE_BATCH", 2)
    batched = transcriber.transcribe(long, max_new_tokens=8, loop_guard=False)
    monkeypatch.setattr(transcribe, "ENCODE_BATCH", 1)
    single = transcriber.transcribe(long, max_new_tokens=8, loop_guard=False)
    assert batched.tokens == single.tokens and batched.stops == single.stops and len(single.stops) == 3
