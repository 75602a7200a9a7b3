"""Audio no model should transcribe: a clear error naming the file (transcribe) or a counted,
flagged clip (bench) — never an invented transcript with exit 0."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from asrquant.audio import check_speech, load_audio
from asrquant.errors import AudioError

from .conftest import cli, refused, speech_like, write_wav


def _wav_header(rate: int, frames_bytes: int, channels: int = 1, bits: int = 16) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    return (b"RIFF" + struct.pack("<I", 36 + frames_bytes) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", frames_bytes))


def _make(kind: str, d):
    """(path, words the message must hold, the AudioError kind) of one bad file."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, 4000, np.uint8).tobytes()
    good = d / "good.wav"
    write_wav(good, speech_like(3.0))
    raw = good.read_bytes()
    cases = {
        "silence": lambda p: write_wav(p, np.zeros(160000, np.float32)),
        "near_silence": lambda p: write_wav(p, (1e-5 * rng.standard_normal(32000)).astype(np.float32), subtype="FLOAT"),
        "dc_only_quiet": lambda p: write_wav(p, np.full(16000, 1e-4, np.float32), subtype="FLOAT"),
        "short_50ms": lambda p: write_wav(p, speech_like(0.05)),
        "one_sample": lambda p: write_wav(p, speech_like(1.0)[:1]),
        "truncated_third": lambda p: p.write_bytes(raw[: len(raw) // 3]),
        "truncated_to_header": lambda p: p.write_bytes(raw[:44]),
        "claims_1_hz": lambda p: p.write_bytes(_wav_header(1, 400) + bytes(400)),
        "claims_100_hz": lambda p: p.write_bytes(_wav_header(100, 4000) + noise),
        "claims_1_mhz": lambda p: p.write_bytes(_wav_header(1_000_000, 4000) + noise),
        "claims_more_data": lambda p: p.write_bytes(_wav_header(16000, 10_000_000) + raw[44:]),
        "empty_file": lambda p: p.write_bytes(b""),
        "random_bytes": lambda p: p.write_bytes(rng.integers(0, 256, 5000, np.uint8).tobytes()),
        "riff_garbage": lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage"),
        "text_as_wav": lambda p: p.write_text("this is not audio\n" * 50),
        "nan_samples": lambda p: write_wav(p, np.full(16000, np.nan, np.float32), subtype="FLOAT"),
        "inf_samples": lambda p: write_wav(p, np.where(np.arange(16000) % 7 == 0, np.inf, 0.1).astype(np.float32),
                                           subtype="FLOAT"),
    }
    expect = {
        "silence": ("silent", "silence"), "near_silence": ("silent", "silence"), "dc_only_quiet": ("silent", "silence"),
        "short_50ms": ("too short", "too_short"), "one_sample": ("too short", "too_short"),
        "truncated_third": ("truncated", "bad_input"), "truncated_to_header": ("truncated", "bad_input"),
        "claims_1_hz": ("sample rate", "bad_input"), "claims_100_hz": ("sample rate", "bad_input"),
        "claims_1_mhz": ("sample rate", "bad_input"), "claims_more_data": ("truncated", "bad_input"),
        "empty_file": ("empty", "bad_input"), "random_bytes": ("cannot decode", "bad_input"),
        "riff_garbage": ("", "bad_input"), "text_as_wav": ("cannot decode", "bad_input"),
        "nan_samples": ("NaN", "bad_input"), "inf_samples": ("infinite", "bad_input"),
    }
    path = d / f"{kind}.wav"
    cases[kind](path)
    return path, *expect[kind]


KINDS = ["silence", "near_silence", "dc_only_quiet", "short_50ms", "one_sample", "truncated_third",
         "truncated_to_header", "claims_1_hz", "claims_100_hz", "claims_1_mhz", "claims_more_data", "empty_file",
         "random_bytes", "riff_garbage", "text_as_wav", "nan_samples", "inf_samples"]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_audio_is_an_error_naming_the_file(tmp_path, kind):
    path, words, error_kind = _make(kind, tmp_path)
    with pytest.raises(AudioError) as e:
        check_speech(load_audio(path), path)
    assert str(path) in str(e.value) and words in str(e.value) and e.value.kind == error_kind


def test_a_directory_and_a_missing_file(tmp_path):
    for path, words in ((tmp_path, "not a file"), (tmp_path / "nowhere.wav", "no such audio file")):
        with pytest.raises(AudioError, match=words):
            load_audio(path)


def test_quiet_but_real_speech_is_kept(tmp_path):
    quiet = write_wav(tmp_path / "quiet.wav", speech_like(1.0) * 0.01)  # about -40 dBFS
    assert len(check_speech(load_audio(quiet), quiet)) == 16000


def test_transcribe_refuses_each_bad_file_and_goes_on(capsys, small_dir, tmp_path):
    paths = [_make(kind, tmp_path)[0] for kind in KINDS]
    good = tmp_path / "good.wav"
    code, out, err = cli(capsys, "transcribe", small_dir, *paths, good, "--max-new-tokens", "4", "--json")
    refused((code, out, err), *paths)
    # one error line per bad file (a random model's output may also be warned about as having no word)
    assert sum(line.startswith("asrquant: error:") for line in err.splitlines()) == len(KINDS)
    assert len(out.strip().splitlines()) == 1 and str(good) in out  # only the good clip has a transcript
