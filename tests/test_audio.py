import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from asrquant.audio import audio_duration, is_silent, load_audio
from asrquant.errors import AudioError

RATE = 44100
SECONDS = 1.5


def _stereo_tone(rate=RATE, seconds=SECONDS):
    t = np.arange(int(rate * seconds)) / rate
    left = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    right = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    return np.stack([left, right], axis=1).astype(np.float32)


def _expected_mono_16k(seconds=SECONDS):
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.4 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)


@pytest.mark.parametrize(
    "name, fmt, tolerance",
    [("a.wav", "WAV", 1e-3), ("a.flac", "FLAC", 1e-3), ("a.ogg", "OGG", 0.05), ("a.mp3", "MP3", 0.05)],
)
def test_formats_round_trip_to_mono_16k(tmp_path, name, fmt, tolerance):
    if fmt not in sf.available_formats():
        pytest.skip(f"this libsndfile cannot write {fmt}")
    path = tmp_path / name
    sf.write(path, _stereo_tone(), RATE, format=fmt)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    expected = _expected_mono_16k()
    # lossy codecs may add a little padding (mp3 encoder delay), never a lot
    assert abs(len(audio) - len(expected)) <= (1 if fmt in ("WAV", "FLAC") else 600)
    assert np.abs(audio).max() <= 1.0
    if fmt in ("WAV", "FLAC"):
        middle = slice(1000, len(expected) - 1000)  # away from the resampler's edges
        assert np.abs(audio[middle] - expected[middle]).max() < tolerance
    else:
        # lossy and possibly delayed: compare the level, not the samples
        rms = np.sqrt(np.mean(audio[2000:-2000] ** 2))
        assert rms == pytest.approx(0.4 / np.sqrt(2), abs=tolerance)


def test_16k_mono_is_returned_as_is(tmp_path):
    samples = (np.random.default_rng(0).uniform(-0.5, 0.5, 16000)).astype(np.float32)
    path = tmp_path / "mono.wav"
    sf.write(path, samples, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path), samples)


def test_other_target_rate(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _stereo_tone(), RATE)
    assert len(load_audio(path, sr=8000)) == pytest.approx(8000 * SECONDS, abs=1)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match="nope.wav"):
        load_audio(path)
    with pytest.raises(AudioError, match="nope.wav"):
        audio_duration(path)


def test_corrupt_file_names_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")  # no ffmpeg to fall back on
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(AudioError, match="garbage.wav.*cannot decode"):
        load_audio(path)


def test_empty_file_names_the_path(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav.*empty"):
        load_audio(path)


def test_wav_without_samples_is_empty(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(AudioError, match="zero.wav.*0 samples"):
        load_audio(path)


def test_nan_samples_are_refused(tmp_path):
    path = tmp_path / "nan.wav"
    sf.write(path, np.array([0.0, np.nan, 0.1], np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav.*NaN"):
        load_audio(path)


def test_ffmpeg_fallback_for_what_soundfile_cannot_read(tmp_path, monkeypatch):
    # A stand-in `ffmpeg` that writes an 8 kHz tone to its last argument, as the real one would
    # decode an m4a; the loader must find it on PATH, read its output and resample it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ffmpeg"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, numpy as np, soundfile as sf\n"
        "assert '-i' in sys.argv\n"
        "t = np.arange(8000) / 8000\n"
        "sf.write(sys.argv[-1], 0.25 * np.sin(2 * np.pi * 300 * t), 8000, subtype='FLOAT', format='WAV')\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ.get("PATH", ""))
    path = tmp_path / "voice.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A not really")
    audio = load_audio(path)
    assert len(audio) == 16000
    assert np.abs(audio).max() == pytest.approx(0.25, abs=0.01)


def test_ffmpeg_failure_names_the_path(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ffmpeg"
    fake.write_text("#!/bin/sh\necho 'Invalid data found when processing input' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    path = tmp_path / "broken.m4a"
    path.write_bytes(b"junk")
    with pytest.raises(AudioError, match="broken.m4a.*Invalid data"):
        load_audio(path)


def test_silence_is_valid_audio_and_detected(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)
    audio = load_audio(path)
    assert len(audio) == 16000
    assert is_silent(audio)
    assert is_silent(np.full(1000, 1e-4, np.float32))  # -80 dBFS
    assert not is_silent(np.full(1000, 1e-2, np.float32))  # -40 dBFS
    assert not is_silent(np.full(1000, 1e-4, np.float32), threshold_db=-90)
    assert is_silent(np.zeros(0, np.float32))


def test_audio_duration(tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, _stereo_tone(), RATE)
    assert audio_duration(path) == pytest.approx(SECONDS)


def test_audio_module_does_not_import_torch():
    code = "import sys, asrquant.audio; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
