import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asrquant import features
from asrquant.audio import load_audio
from asrquant.features import HOP_LENGTH, N_FFT, N_FRAMES, N_SAMPLES, log_mel, mel_filters, pad_or_trim

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = ("vitw8", "dev")


def _clips():
    clips = []
    for name in SETS:
        manifest = DATA / name / "manifest.jsonl"
        if manifest.is_file():
            for line in manifest.read_text().splitlines():
                if line.strip():
                    clips.append(manifest.parent / json.loads(line)["audio"])
    return clips


@pytest.fixture(scope="module")
def extractors():
    transformers = pytest.importorskip("transformers")
    return {n: transformers.WhisperFeatureExtractor(feature_size=n) for n in (80, 128)}


@pytest.mark.parametrize("n_mels", [80, 128])
def test_matches_transformers_on_shared_clips(extractors, n_mels):
    clips = _clips()
    if not clips:
        pytest.skip(f"no shared evaluation audio under {DATA}")
    worst = 0.0
    for path in clips:
        audio = load_audio(path)
        expected = extractors[n_mels](audio, sampling_rate=16000, return_tensors="np").input_features[0]
        ours = log_mel(audio, n_mels=n_mels)
        assert ours.shape == expected.shape == (n_mels, N_FRAMES)
        worst = max(worst, float(np.abs(ours - expected).max()))
    assert worst <= 1e-4, worst


@pytest.mark.parametrize("n_mels", [80, 128])
def test_matches_transformers_on_long_and_short_synthetic_audio(extractors, n_mels):
    rng = np.random.default_rng(0)
    for seconds in (0.05, 3.3, 31.0):  # shorter than a hop's worth of frames, typical, trimmed
        audio = (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
        expected = extractors[n_mels](audio, sampling_rate=16000, return_tensors="np").input_features[0]
        assert np.abs(log_mel(audio, n_mels=n_mels) - expected).max() <= 1e-4


def _log_mel_every_frame(audio: np.ndarray, n_mels: int) -> np.ndarray:
    """The log-mel with every frame of the padded window transformed (no frame skipped)."""
    mel = mel_filters(n_mels) @ features._power_spectrum(pad_or_trim(audio).astype(np.float64)).T
    spec = np.log10(np.maximum(mel, 1e-10))
    return ((np.maximum(spec, spec.max() - 8.0) + 4.0) / 4.0).astype(np.float32)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_padding_frames_skipped_exactly(n_mels):
    # Only frames that can see the sound are transformed; at every boundary (the last frame that
    # sees a sample, the end reflection reaching back into the sound) the result is bit for bit
    # the full transform's.
    rng = np.random.default_rng(2)
    edge = N_SAMPLES - N_FFT // 2
    for n in (N_FFT // 2 + 1, 7 * HOP_LENGTH, 7 * HOP_LENGTH + 1, 64037, edge - 1, edge, edge + 1, N_SAMPLES - 1,
              N_SAMPLES, N_SAMPLES + 9):
        audio = (0.1 * rng.standard_normal(n)).astype(np.float32)
        expected = _log_mel_every_frame(audio, n_mels)
        np.testing.assert_array_equal(log_mel(audio, n_mels=n_mels), expected, err_msg=str(n))
    assert features._frames_touching(4 * 16000, N_SAMPLES) == (4 * 16000 + N_FFT // 2) // HOP_LENGTH + 1


def test_mel_filters_match_transformers(extractors):
    for n_mels, fe in extractors.items():
        np.testing.assert_allclose(mel_filters(n_mels), fe.mel_filters.T, rtol=0, atol=1e-12)


def test_silence_is_flat():
    features = log_mel(np.zeros(16000, np.float32))
    assert features.shape == (80, N_FRAMES) and features.dtype == np.float32
    np.testing.assert_array_equal(features, np.full_like(features, (-10.0 + 4.0) / 4.0))


def test_without_padding_the_frames_follow_the_audio():
    audio = np.random.default_rng(1).standard_normal(16000).astype(np.float32)
    assert log_mel(audio, n_samples=None).shape == (80, 100)
    with pytest.raises(ValueError):
        log_mel(audio[:100], n_samples=None)
    with pytest.raises(ValueError):
        log_mel(np.zeros((2, 16000), np.float32))


def test_pad_or_trim():
    a = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(pad_or_trim(a, 4), a[:4])
    padded = pad_or_trim(a, 12)
    np.testing.assert_array_equal(padded, np.concatenate([a, [0, 0]]))
    assert padded.dtype == np.float32
    assert pad_or_trim(np.zeros(N_SAMPLES + 5)).shape == (N_SAMPLES,)
    assert pad_or_trim(np.ones((2, 3)), 5).shape == (2, 5)


def test_features_module_does_not_import_torch():
    code = "import sys, asrquant.features; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
