"""Voices-in-the-Wild style degradations of clean speech.

Eight conditions, one small function each. Every function takes mono float32 audio at 16 kHz and
a numpy Generator, draws its parameters from that Generator, and returns the degraded audio with
a dict of every value it drew (the manifest keeps it). The Generator is seeded from
``(seed, source clip id, condition)``, so a clip's output does not depend on which other clips are
processed or in which order, and the same seed gives byte-identical files.

=============  ==============================================================================
noise          generated coloured noise (white / pink / brown, audiomentations AddColorNoise)
               or babble (other clips of the set, re-pitched, summed) at a drawn SNR
far_field      a shoebox room (pyroomacoustics image sources, drawn size and RT60, air
               absorption), the microphone metres away, a quiet ambient noise floor
obstructed     muffled: steep low-pass at a drawn cutoff (scipy Butterworth) and attenuation
distortion     clipping (audiomentations ClippingDistortion) and/or overdrive
               (audiomentations TanhDistortion)
recording      band-limited channel (band-pass), low-bitrate codec round trip (Opus or MP3
               through libsndfile, i.e. soundfile), and the tail cut off -- the reference text
               still holds the whole sentence, so the lost words count as deletions
echo           discrete echoes (a sparse impulse response) plus a small room's reverb
dropout        missing segments: stretches of exact digital silence inside the speech
mixed          two of the above, drawn, applied in acoustic-then-channel order, each drawn
               from the milder half of its ranges
=============  ==============================================================================

Why these libraries: audiomentations and pyroomacoustics are the maintained, widely used tools for
exactly these effects; scipy.signal gives the filters. The codec round trip goes through
soundfile's bundled libsndfile (>= 1.1 writes Opus and MP3), which is already a core dependency of
asrquant and comes from PyPI, so no ffmpeg binary is needed anywhere. audiomentations draws from
Python's and numpy's global generators; we fix every range to the single value we drew and run
it with those globals seeded from our Generator (and restore them after), so it adds no
randomness of its own.

Every output is peak-limited to 0.99 (``output_gain_db`` in its parameters, 0 when untouched).

The parameter ranges below were calibrated with whisper-base (faster-whisper, float32, greedy)
on the 272 evaluation sentences, one condition per clip: clean about 2 % corpus WER, the
single conditions about 15-30 %, mixed about 45 % -- every condition clearly harder than clean
speech, none hopeless. The README's calibration table measures the same sets with asrquant's
own decoder.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from ..artifact import atomic_dir, sha256_file, write_manifest
from ..errors import AsrQuantError
from ..progress import bar as progress
from .common import (
    MANIFEST_JSONL,
    SAMPLE_RATE,
    load_16k,
    r6,
    read_jsonl,
    rng_for,
    safe_id,
    write_jsonl,
    write_wav,
)

DATA_WILD_VERSION = 2  # bump when the output changes for the same inputs and seed
CONDITIONS: tuple[str, ...] = (
    "noise",
    "far_field",
    "obstructed",
    "distortion",
    "recording",
    "echo",
    "dropout",
    "mixed",
)
BASE_CONDITIONS = CONDITIONS[:-1]
# The order in which the parts of a "mixed" clip are applied: the room and the noise around the
# talker first, then what the microphone and the channel do to it.
CHAIN_ORDER = ("far_field", "echo", "obstructed", "noise", "distortion", "recording", "dropout")

# ----------------------------------------------------------------------------- parameter ranges
# A range written (MILD, SEVERE) is drawn as MILD + u * severity * (SEVERE - MILD), u uniform in
# [0, 1): severity 1 (a single condition) spans it all; the parts of a "mixed" clip use
# MIXED_SEVERITY, the milder half, so that two stacked conditions stay a hard but fair test.
# A range written (LO, HI) with no direction (room geometry, echo delays) is plain uniform.
NOISE_KINDS = ("white", "pink", "brown", "babble")
NOISE_KIND_P = (0.2, 0.25, 0.2, 0.35)
NOISE_SNR_DB = {"white": (8.0, -4.0), "pink": (4.0, -10.0), "brown": (-6.0, -20.0), "babble": (12.0, 3.0)}
NOISE_DECAY_DB_PER_OCT = {"white": 0.0, "pink": -3.01, "brown": -6.02}
BABBLE_TALKERS = (3, 6)  # (LO, HI) inclusive
BABBLE_RATE = (0.85, 1.2)  # (LO, HI): each talker re-pitched / re-timed by this factor

FAR_ROOM_M = ((7.0, 14.0), (5.0, 10.0), (2.8, 4.5))  # (LO, HI) length, width, height
FAR_RT60_S = (0.6, 1.5)
FAR_DISTANCE_M = (2.5, 7.0)
FAR_NOISE_SNR_DB = (20.0, 5.0)
FAR_LEVEL_DB = (-4.0, -14.0)  # the far talker's level relative to the clean clip
MAX_IMAGE_ORDER = 40  # caps the image-source method's cost; the tail beyond is negligible

OBSTRUCTED_CUTOFF_HZ = (1400.0, 500.0)
OBSTRUCTED_ORDER = 8  # Butterworth order, run forwards and backwards (zero phase, 2x the slope)
OBSTRUCTED_GAIN_DB = (-3.0, -12.0)

DISTORTION_MODES = ("clipping", "overdrive", "both")
CLIP_PERCENTILE = (20, 60)  # percent of samples clipped (integer, as audiomentations takes it)
OVERDRIVE_AMOUNT = (0.5, 0.9)
DISTORTION_PREGAIN_DB = (0.0, 6.0)

RECORDING_LOW_HZ = (200.0, 500.0)
RECORDING_HIGH_HZ = (3800.0, 2600.0)
RECORDING_CODECS = ("opus", "mp3")
OPUS_LEVEL = (0.93, 1.0)  # libsndfile compression level: 1.0 is about 7 kbit/s at 16 kHz mono
MP3_LEVEL = (0.85, 0.99)  # VBR; about 16-20 kbit/s at 16 kHz mono (MPEG-2 layer III)
TRUNCATE_FRACTION = (0.08, 0.25)  # of the speech (first to last active frame) removed at the end

ECHO_COUNT = (1, 2)  # inclusive
ECHO_DELAY_S = (0.08, 0.35)  # (LO, HI)
ECHO_FIRST_GAIN = (0.2, 0.5)
ECHO_DECAY = (0.5, 0.7)  # each later echo's gain relative to the one before
ECHO_RT60_S = (0.15, 0.45)
ECHO_ROOM_M = ((3.0, 6.0), (3.0, 5.0), (2.4, 3.0))  # (LO, HI)
ECHO_DISTANCE_M = (0.5, 1.2)

DROPOUT_RATE_PER_S = (1.0, 3.0)  # gaps per second of speech
DROPOUT_GAP_S = (0.06, 0.25)
DROPOUT_MAX_FRACTION = 0.35

MIXED_SEVERITY = 0.5
OUTPUT_PEAK = 0.99


# ----------------------------------------------------------------------------------- helpers
@dataclass
class Context:
    """What a condition may need beyond its own clip: other clips of the set (for babble)."""

    source_id: str = ""
    other_ids: Sequence[str] = ()
    loader: Callable[[str], np.ndarray] | None = None
    _cache: dict = field(default_factory=dict)

    def load(self, clip_id: str) -> np.ndarray:
        if clip_id not in self._cache:
            if self.loader is None:
                raise AsrQuantError("babble needs the other clips of the set")
            self._cache[clip_id] = self.loader(clip_id)
        return self._cache[clip_id]


@contextlib.contextmanager
def _global_seed(seed: int) -> Iterator[None]:
    """Seed Python's and numpy's global generators for a library call, then restore them."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _am(transform, x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Run an audiomentations transform (all ranges fixed) deterministically."""
    with _global_seed(int(rng.integers(0, 2**63))):
        y = transform(np.ascontiguousarray(x, dtype=np.float32), SAMPLE_RATE)
    extra = {k: _jsonable(v) for k, v in transform.parameters.items() if k != "should_apply"}
    return np.asarray(y, dtype=np.float32), extra


def _jsonable(v):
    if isinstance(v, (np.floating, float)):
        return r6(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v


def _u(rng: np.random.Generator, lo_hi) -> float:
    """Plain uniform in (LO, HI)."""
    return r6(rng.uniform(*lo_hi))


_severity: contextvars.ContextVar[float] = contextvars.ContextVar("asrquant_wild_severity", default=1.0)


def _s(rng: np.random.Generator, mild_severe) -> float:
    """A (MILD, SEVERE) range drawn at the current severity (see the ranges above)."""
    mild, severe = mild_severe
    return r6(mild + rng.uniform() * _severity.get() * (severe - mild))


def _si(rng: np.random.Generator, mild_severe) -> int:
    """An integer (MILD, SEVERE) range, both ends included at severity 1."""
    mild, severe = mild_severe
    span = (severe - mild + (1 if severe >= mild else -1)) * _severity.get()
    return int(mild + np.trunc(rng.uniform() * span))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def speech_bounds(x: np.ndarray, sr: int = SAMPLE_RATE, floor_db: float = -35.0) -> tuple[int, int]:
    """First and last sample of the frames within ``floor_db`` of the loudest 20 ms frame."""
    hop = sr // 50
    n = len(x) // hop
    if n == 0:
        return 0, len(x)
    frames = np.sqrt(np.mean(np.square(x[: n * hop].reshape(n, hop), dtype=np.float64), axis=1))
    active = np.flatnonzero(frames > frames.max() * 10 ** (floor_db / 20))
    if len(active) == 0:
        return 0, len(x)
    return int(active[0] * hop), int(min(len(x), (active[-1] + 1) * hop))


def _butter(x: np.ndarray, order: int, cutoff, btype: str) -> np.ndarray:
    from scipy import signal

    sos = signal.butter(order, cutoff, btype=btype, fs=SAMPLE_RATE, output="sos")
    return signal.sosfiltfilt(sos, np.asarray(x, dtype=np.float64)).astype(np.float32)


def _room_rir(rng: np.random.Generator, dims_range, rt60_range, dist_range) -> tuple[np.ndarray, dict]:
    """A room impulse response from pyroomacoustics' image-source method, with drawn geometry."""
    import pyroomacoustics as pra

    dims = [_u(rng, r) for r in dims_range]
    rt60 = _s(rng, rt60_range)
    distance = _s(rng, dist_range)
    margin = 0.5
    src = [
        _u(rng, (margin, dims[0] / 3)),
        _u(rng, (margin, dims[1] - margin)),
        _u(rng, (1.2, min(1.9, dims[2] - margin))),
    ]
    azimuth = _u(rng, (-np.pi / 3, np.pi / 3))  # facing into the room, away from the near wall
    mic_z = _u(rng, (0.8, min(2.0, dims[2] - margin)))
    dz = mic_z - src[2]
    horiz = float(np.sqrt(max(distance**2 - dz**2, 0.05)))
    mic = [src[0] + horiz * np.cos(azimuth), src[1] + horiz * np.sin(azimuth), mic_z]
    mic[0] = float(np.clip(mic[0], margin, dims[0] - margin))
    mic[1] = float(np.clip(mic[1], margin, dims[1] - margin))
    actual = float(np.linalg.norm(np.subtract(mic, src)))
    try:
        absorption, max_order = pra.inverse_sabine(rt60, dims)
    except ValueError:  # RT60 unreachable in so small a room: fall back to the most reverberant
        absorption, max_order = 0.05, MAX_IMAGE_ORDER
    max_order = int(min(max_order, MAX_IMAGE_ORDER))
    room = pra.ShoeBox(
        dims,
        fs=SAMPLE_RATE,
        materials=pra.Material(float(absorption)),
        max_order=max_order,
        air_absorption=True,
    )
    room.add_source(src)
    room.add_microphone(np.asarray(mic, dtype=float).reshape(3, 1))
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    params = {
        "room_m": dims,
        "rt60_s": rt60,
        "source_m": [r6(v) for v in src],
        "mic_m": [r6(v) for v in mic],
        "distance_m": r6(actual),
        "absorption": r6(absorption),
        "max_order": max_order,
        "rir_len": int(len(rir)),
    }
    return rir, params


def _convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    from scipy import signal

    return signal.fftconvolve(np.asarray(x, dtype=np.float64), h)[: len(x)].astype(np.float32)


def _colored_noise(rng: np.random.Generator, x: np.ndarray, kind: str, snr_db: float) -> tuple[np.ndarray, dict]:
    from audiomentations import AddColorNoise

    decay = NOISE_DECAY_DB_PER_OCT[kind]
    t = AddColorNoise(
        min_snr_db=snr_db, max_snr_db=snr_db, min_f_decay=decay, max_f_decay=decay,
        p_apply_a_weighting=0.0, p=1.0,
    )
    return _am(t, x, rng)


# -------------------------------------------------------------------------------- conditions
def noise(x: np.ndarray, rng: np.random.Generator, ctx: Context) -> tuple[np.ndarray, dict]:
    kind = str(rng.choice(NOISE_KINDS, p=NOISE_KIND_P))
    if kind == "babble" and not (ctx.loader and len(ctx.other_ids) >= 2):
        kind = "pink"  # a set too small for babble
    snr = _s(rng, NOISE_SNR_DB[kind])
    params: dict = {"kind": kind, "snr_db": snr}
    if kind != "babble":
        y, extra = _colored_noise(rng, x, kind, snr)
        params.update(extra)
        return y, params
    import soxr

    k = int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1))
    others = sorted(ctx.other_ids)
    picks = [others[i] for i in rng.choice(len(others), size=min(k, len(others)), replace=False)]
    mix = np.zeros(len(x), dtype=np.float64)
    talkers = []
    for cid in picks:
        a = ctx.load(cid).astype(np.float64)
        rate = _u(rng, BABBLE_RATE)
        a = soxr.resample(a, SAMPLE_RATE, SAMPLE_RATE / rate, quality="HQ")
        lo, hi = speech_bounds(a)
        a = a[lo:hi]
        offset = int(rng.integers(0, len(a)))
        reps = int(np.ceil((len(x) + offset) / len(a))) + 1
        a = np.tile(a, reps)[offset : offset + len(x)]
        mix += a / max(_rms(a), 1e-9)
        talkers.append({"id": cid, "rate": rate, "offset": offset})
    gain = _rms(x) / max(_rms(mix), 1e-12) * 10 ** (-snr / 20)
    params.update({"talkers": talkers, "noise_gain": r6(gain)})
    return (x + gain * mix).astype(np.float32), params


def far_field(x: np.ndarray, rng: np.random.Generator, ctx: Context) -> tuple[np.ndarray, dict]:
    rir, params = _room_rir(rng, FAR_ROOM_M, FAR_RT60_S, FAR_DISTANCE_M)
    y = _convolve(x, rir)
    level = _s(rng, FAR_LEVEL_DB)
    y = y * (_rms(x) / max(_rms(y), 1e-12) * 10 ** (level / 20))
    snr = _s(rng, FAR_NOISE_SNR_DB)
    y, extra = _colored_noise(rng, y, "pink", snr)
    params.update({"level_db": level, "noise": {"kind": "pink", "snr_db": snr, **extra}})
    return y, params


def obstructed(x: np.ndarray, rng: np.random.Generator, ctx: Context) -> tuple[np.ndarray, dict]:
    cutoff = _s(rng, OBSTRUCTED_CUTOFF_HZ)
    gain = _s(rng, OBSTRUCTED_GAIN_DB)
    y = _butter(x, OBSTRUCTED_ORDER, cutoff, "lowpass") * 10 ** (gain / 20)
    return y.astype(np.float32), {"cutoff_hz": cutoff, "order": OBSTRUCTED_ORDER, "zero_phase": True, "gain_db": gain}


def distortion(x: np.ndarray, rng: np.random.Generator, ctx: Context) -> tuple[np.ndarray, dict]:
    from audiomentations import ClippingDistortion, TanhDistortion

    mode = str(rng.choice(DISTORTION_MODES))
    pregain = _s(rng, DISTORTION_PREGAIN_DB)
    y = x * 10 ** (pregain / 20)
    params: dict = {"mode": mode, "pregain_db": pregain}
    if mode in ("overdrive", "both"):
        amount = _s(rng, OVERDRIVE_AMOUNT)
        y, _ = _am(TanhDistortion(min_distortion=amount, max_distortion=amount, p=1.0), y, rng)
        params["overdrive"] = {"amount": amount}
    if mode in ("clipping", "both"):
        pct = _si(rng, CLIP_PERCENTILE)
        y, _ = _am(ClippingDistortion(min_percentile_threshold=pct, max_percentile_threshold=pct, p=1.0), y, rng)
        params["clipping"] = {"percentile": pct}
    return y, params


def codec_roundtrip(x: np.ndarray, codec: str, level: float) -> tuple[np.ndarray, float]:
    """Encode and decode through libsndfile; returns the audio and the coded bit rate (kbit/s)."""
    import soundfile as sf

    fmt, subtype, mode = {
        "opus": ("OGG", "OPUS", None),
        "mp3": ("MP3", "MPEG_LAYER_III", "VARIABLE"),
    }[codec]
    if subtype not in sf.available_subtypes(fmt):
        raise AsrQuantError(
            f"this libsndfile ({sf.__libsndfile_version__}) cannot write {codec}; "
            "install soundfile >= 0.12.1 from PyPI (it bundles a libsndfile with Opus and MP3)"
        )
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1, 1).astype(np.float32), SAMPLE_RATE, format=fmt, subtype=subtype,
             compression_level=level, bitrate_mode=mode)
    kbps = len(buf.getvalue()) * 8 / (len(x) / SAMPLE_RATE) / 1000
    buf.seek(0)
    y, sr = sf.read(buf, dtype="float32")
    if sr != SAMPLE_RATE:
        raise AsrQuantError(f"{codec} round trip changed the sample rate to {sr}")
    if len(y) < len(x):
        y = np.concatenate([y, np.zeros(len(x) - len(y), dtype=np.float32)])
    return y[: len(x)], kbps


def recording(x: np.ndarray, rng: np.random.Generator, ctx: Context) -> tuple[np.ndarray, dict]:
    low, high = _s(rng, RECORDING_LOW_HZ), _s(rng, RECORDING_HIGH_HZ)
    y = _butter(x, 4, [low, high], "bandpass")
    codec = str(rng.choice(RECORDING_CODECS))
    level = _s(rng, OPUS_LEVEL if codec == "opus" else MP3_LEVEL)
    y, kbps = codec_roundtrip(y, codec, level)
    start, end = speech_bounds(x)
    frac = _s(rng, TRUNCATE_FRACTION)
    cut = int(end - frac * (end - start))
    fade = min(cut, SAMPLE_RATE // 100)
    y = y[:cut].copy()
    y[cut - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return y, {
        "band_hz": [low, high],
        "codec": codec,
        "codec_level": level,
        "codec_kbps": r6(kbps),
        "truncate_fraction": frac,
        "kept_s": r6(cut / SAMPLE_RATE),
        "removed_s": r6((len(x) - cut) / SAMPLE_RATE),
    }


def echo(x: np.ndarray, rng: np.random.Generator, ctx: Context) -> tuple[np.ndarray, dict]:
    n = _si(rng, ECHO_COUNT)
    delays = sorted(_u(rng, ECHO_DELAY_S) for _ in range(n))
    gains = [_s(rng, ECHO_FIRST_GAIN)]
    for _ in range(n - 1):
        gains.append(r6(gains[-1] * _s(rng, ECHO_DECAY)))
    h = np.zeros(int(round(max(delays) * SAMPLE_RATE)) + 1)
    h[0] = 1.0
    for d, g in zip(delays, gains):
        h[int(round(d * SAMPLE_RATE))] += g
    rir, room = _room_rir(rng, ECHO_ROOM_M, ECHO_RT60_S, ECHO_DISTANCE_M)
    rir = rir / max(np.max(np.abs(rir)), 1e-12)
    y = _convolve(x, np.convolve(h, rir))
    y = y * (_rms(x) / max(_rms(y), 1e-12))
    return y, {"delays_s": delays, "gains": gains, "room": room}


def dropout(x: np.ndarray, rng: np.random.Generator, ctx: Context) -> tuple[np.ndarray, dict]:
    start, end = speech_bounds(x)
    rate = _s(rng, DROPOUT_RATE_PER_S)
    n = max(1, int(round(rate * (end - start) / SAMPLE_RATE)))
    budget = DROPOUT_MAX_FRACTION * (end - start)
    gaps: list[tuple[int, int]] = []
    for _ in range(20 * n):
        if len(gaps) == n:
            break
        length = int(_s(rng, DROPOUT_GAP_S) * SAMPLE_RATE)
        if sum(b - a for a, b in gaps) + length > budget or end - start <= length:
            continue
        a = int(rng.integers(start, end - length))
        b = a + length
        if any(a < gb + SAMPLE_RATE // 20 and ga < b + SAMPLE_RATE // 20 for ga, gb in gaps):
            continue  # keep 50 ms of audio between gaps
        gaps.append((a, b))
    gaps.sort()
    y = x.copy()
    for a, b in gaps:
        y[a:b] = 0.0
    return y, {
        "rate_per_s": rate,
        "gaps_s": [[r6(a / SAMPLE_RATE), r6(b / SAMPLE_RATE)] for a, b in gaps],
        "dropped_s": r6(sum(b - a for a, b in gaps) / SAMPLE_RATE),
    }


FUNCTIONS: dict[str, Callable] = {
    "noise": noise,
    "far_field": far_field,
    "obstructed": obstructed,
    "distortion": distortion,
    "recording": recording,
    "echo": echo,
    "dropout": dropout,
}


def mixed(x: np.ndarray, rng: np.random.Generator, ctx: Context, seed: int = 0) -> tuple[np.ndarray, dict]:
    picks = [str(c) for c in rng.choice(BASE_CONDITIONS, size=2, replace=False)]
    parts = [c for c in CHAIN_ORDER if c in picks]
    y = x
    params: dict = {"parts": parts, "severity": MIXED_SEVERITY}
    token = _severity.set(MIXED_SEVERITY)
    try:
        for c in parts:
            part_rng = rng_for("asrquant-wild", DATA_WILD_VERSION, seed, ctx.source_id, "mixed", c)
            y, params[c] = FUNCTIONS[c](y, part_rng, ctx)
    finally:
        _severity.reset(token)
    return y, params


def degrade(x: np.ndarray, condition: str, seed: int = 0, ctx: Context | None = None) -> tuple[np.ndarray, dict]:
    """Apply one condition to ``x`` (float32, 16 kHz) with the Generator of (seed, clip, condition)."""
    ctx = ctx or Context()
    if condition not in CONDITIONS:
        raise AsrQuantError(f"unknown condition {condition!r}; expected one of {', '.join(CONDITIONS)}")
    rng = rng_for("asrquant-wild", DATA_WILD_VERSION, int(seed), ctx.source_id, condition)
    x = np.asarray(x, dtype=np.float32)
    if condition == "mixed":
        y, params = mixed(x, rng, ctx, int(seed))
    else:
        y, params = FUNCTIONS[condition](x, rng, ctx)
    y = np.asarray(y, dtype=np.float32)
    if not np.all(np.isfinite(y)):
        raise AsrQuantError(f"{condition} produced non-finite audio for {ctx.source_id!r}")
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    gain_db = 0.0
    if peak > OUTPUT_PEAK:
        y = y * (OUTPUT_PEAK / peak)
        gain_db = 20 * np.log10(OUTPUT_PEAK / peak)
    params["output_gain_db"] = r6(gain_db)
    return y, params


# ------------------------------------------------------------------------------------ driver
def parse_conditions(spec: str | Sequence[str] | None) -> list[str]:
    """``None``/``"all"`` -> every condition; else a comma list or sequence, validated, in order."""
    if spec is None:
        return list(CONDITIONS)
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    items = [c.strip() for c in items if c.strip()]
    if items == ["all"]:
        return list(CONDITIONS)
    bad = [c for c in items if c not in CONDITIONS]
    if bad or not items:
        raise AsrQuantError(f"unknown condition(s) {', '.join(bad) or '(none)'}; choose from {', '.join(CONDITIONS)}")
    return list(dict.fromkeys(items))


def assign(ids: Sequence[str], conditions: Sequence[str], seed: int) -> dict[str, str]:
    """One condition per clip, balanced: clips shuffled by a hash of (seed, id), then dealt out."""
    from .common import derive_seed

    order = sorted(ids, key=lambda i: (derive_seed("asrquant-wild-assign", int(seed), i), i))
    return {cid: conditions[k % len(conditions)] for k, cid in enumerate(order)}


def generate(
    manifest: str | Path,
    out: str | Path,
    conditions: str | Sequence[str] | None = None,
    seed: int = 0,
    each: bool = False,
    include_clean: bool = True,
    show_progress: bool = True,
) -> Path:
    """Degrade every clip of ``manifest`` into ``out`` (replaced atomically). Returns ``out``.

    Each clip gets one of ``conditions`` (balanced over the set), or every one of them when
    ``each``; with ``include_clean`` the untouched clip is copied too, as category ``clean``.
    """
    manifest = Path(manifest)
    src_dir = manifest.parent if manifest.is_file() else manifest
    rows = read_jsonl(manifest)
    conds = parse_conditions(conditions)
    out = Path(out)
    if out.resolve() == src_dir.resolve():
        raise AsrQuantError(f"{out}: the output directory must differ from the input")
    by_id = {r["id"]: r for r in rows}

    def loader(cid: str) -> np.ndarray:
        return load_16k(src_dir / by_id[cid]["audio"])

    ids = [r["id"] for r in rows]
    plan = {cid: list(conds) for cid in ids} if each else {cid: [c] for cid, c in assign(ids, conds, seed).items()}
    out_rows: list[dict] = []
    total = sum(len(v) for v in plan.values())
    shared_cache: dict = {}
    with atomic_dir(out) as tmp:
        with progress(f"wild -> {out.name}", total, show_progress) as advance:
            for row in rows:
                cid = row["id"]
                x = loader(cid)
                base = {k: v for k, v in row.items() if k not in ("id", "audio", "duration_s", "category", "params")}
                if include_clean:
                    name = f"{safe_id(cid)}_clean.wav"
                    src_path = src_dir / row["audio"]
                    if src_path.suffix.lower() == ".wav" and _is_16k_pcm16(src_path):
                        shutil.copyfile(src_path, tmp / name)
                    else:
                        write_wav(tmp / name, x)
                    out_rows.append({"id": f"{cid}_clean", "audio": name, **base,
                                     "duration_s": r6(len(x) / SAMPLE_RATE), "category": "clean",
                                     "source_id": cid, "params": {}})
                for cond in plan[cid]:
                    ctx = Context(source_id=cid, other_ids=[i for i in ids if i != cid], loader=loader,
                                  _cache=shared_cache)
                    y, params = degrade(x, cond, seed, ctx)
                    name = f"{safe_id(cid)}_{cond}.wav"
                    write_wav(tmp / name, y)
                    out_rows.append({"id": f"{cid}_{cond}", "audio": name, **base,
                                     "duration_s": r6(len(y) / SAMPLE_RATE), "category": cond,
                                     "source_id": cid, "seed": int(seed), "params": params})
                    advance()
                if len(shared_cache) > 64:
                    shared_cache.clear()
        write_jsonl(tmp / MANIFEST_JSONL, out_rows)
        counts = {c: sum(1 for r in out_rows if r["category"] == c)
                  for c in (["clean"] if include_clean else []) + conds}
        write_manifest(
            tmp,
            kind="asrquant-data-wild",
            generator_version=DATA_WILD_VERSION,
            seed=int(seed),
            conditions=conds,
            assignment="each" if each else "balanced",
            source_manifest_sha256=sha256_file(src_dir / MANIFEST_JSONL if manifest.is_dir() else manifest),
            clips=len(out_rows),
            counts=counts,
        )
    return out


def _is_16k_pcm16(path: Path) -> bool:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception:
        return False
    return info.samplerate == SAMPLE_RATE and info.channels == 1 and info.subtype == "PCM_16"
