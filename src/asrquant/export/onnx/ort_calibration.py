"""Calibration inputs for onnxruntime's GPTQ, one data reader per graph of a float Whisper export.

Each graph sees what it sees when decoding the calibration clips, teacher forced on their
reference transcripts (or, where a clip has none, the float export's own greedy output):

    encoder          the clip's log-mel (first 30 s)
    decoder_prefill  prompt + transcript + end token, with the clip's cross-attention caches
    decoder_step     the same tokens at position 0 over an empty cache: the step graph masks
                     causally, so every token's Linear inputs are those of the one-token steps
                     that would decode it, in one call instead of one per token

The cross-attention caches come from running the float encoder graph on the clip, so the
decoder is calibrated on the float model's activations, as :mod:`asrquant.quant.calibrate` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnxruntime.quantization.calibrate import CalibrationDataReader

MIN_CAPACITY = 32  # the runner's smallest self-attention buffer


@dataclass
class CalibClip:
    id: str
    mel: np.ndarray  # [n_mels, 3000]
    tokens: np.ndarray  # int64 [T]: prompt, transcript, end token


@dataclass
class OrtCalibration:
    manifest: str
    clips: list[CalibClip]
    audio_sha256: list[str]

    def to_dict(self) -> dict:
        return {"manifest": self.manifest, "ids": [c.id for c in self.clips], "audio_sha256": self.audio_sha256}


def calibration_clips(artifact: Path, manifest: str | Path, n: int) -> OrtCalibration:
    """Log-mels and teacher-forced tokens of ``n`` clips spread over ``manifest``."""
    from ...artifact import sha256_file
    from ...audio import load_audio
    from ...eval.manifest import read_manifest
    from ...features import log_mel
    from ...models.whisper.onnx_session import open_onnx_artifact
    from ...models.whisper.transcribe import WINDOW_SAMPLES
    from ...quant.calibrate import spread

    clips = read_manifest(manifest)  # refuses an empty or malformed manifest, naming it
    transcriber, _ = open_onnx_artifact(artifact, threads=1)
    tok, gen = transcriber.tokenizer, transcriber.generation
    n_text_ctx = transcriber.session.max_positions
    out = OrtCalibration(str(manifest), [], [])
    for clip in (clips[i] for i in spread(len(clips), n)):
        audio = load_audio(clip.audio)[:WINDOW_SAMPLES]
        prompt = tok.prompt(clip.lang or "en" if tok.multilingual else None)
        if clip.text.strip():
            text_ids = tok.encode(" " + clip.text.strip())
        else:
            text_ids = transcriber.transcribe(audio, clip.lang).tokens
        tokens = (prompt + list(text_ids))[: n_text_ctx - 1] + [tok.eot]
        out.clips.append(CalibClip(clip.id, log_mel(audio, n_mels=gen.n_mels), np.asarray(tokens, np.int64)))
        out.audio_sha256.append(sha256_file(clip.audio))
    return out


class GraphFeeds(CalibrationDataReader):
    """The feeds of one graph for every calibration clip, computed once.

    onnxruntime's GPTQ deep-copies its reader before reading it; the copy shares the feeds
    (they are only read), so a reader of large cross-attention caches is not held twice."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self.feeds = feeds
        self._next = 0

    def get_next(self) -> dict | None:
        if self._next >= len(self.feeds):
            return None
        self._next += 1
        return self.feeds[self._next - 1]

    def __len__(self) -> int:
        return len(self.feeds)

    def __deepcopy__(self, memo) -> "GraphFeeds":
        return GraphFeeds(self.feeds)


def graph_readers(artifact: Path, calibration: OrtCalibration) -> dict[str, GraphFeeds]:
    """Graph name -> reader of its calibration feeds, from the float graphs of ``artifact``."""
    from ...models.whisper.onnx_session import open_onnx_artifact

    transcriber, _ = open_onnx_artifact(artifact, threads=1)
    session = transcriber.session
    feeds = {"encoder": [], "decoder_prefill": [], "decoder_step": []}
    for clip in calibration.clips:
        cross = session.encode(clip.mel)
        tokens = clip.tokens[None]
        cross_feeds = {name: value for i in range(session.n_layer) for name, value in cross.feeds(i).items()}
        feeds["encoder"].append({"mel": clip.mel[None].astype(np.float32)})
        feeds["decoder_prefill"].append({"tokens": tokens, **cross_feeds})
        feeds["decoder_step"].append({"tokens": tokens, "position": np.zeros(1, np.int64),
                                      **empty_cache(cross.k, tokens.shape[1], session.max_positions),
                                      **cross_feeds})
    return {g: GraphFeeds(f) for g, f in feeds.items()}


def empty_cache(cross_k: np.ndarray, n_tokens: int, max_positions: int) -> dict[str, np.ndarray]:
    """Zeroed self-attention buffers as the runner allocates them for ``n_tokens`` at position 0."""
    n_layer, _, heads, head_dim = cross_k.shape[:4]
    capacity = min(max_positions, max(MIN_CAPACITY, 1 << n_tokens.bit_length()))
    k = np.zeros((1, heads, head_dim, capacity), np.float32)
    v = np.zeros((1, heads, capacity, head_dim), np.float32)
    return {**{f"past_k_{i}": k for i in range(n_layer)}, **{f"past_v_{i}": v for i in range(n_layer)}}
