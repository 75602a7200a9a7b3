"""What every engine returns, ours (any family, torch or onnxruntime) and the peers', and the
engine of ours that wraps a family's transcriber. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class Transcript:
    text: str
    language: str | None = None
    tokens: list[int] = field(default_factory=list)
    # One entry per 30 s window: how its decoding ended ("eot", "loop", "max_length").
    stops: list[str] = field(default_factory=list)
    # Seconds spent on log-mels + the encoder (the rest of a transcription is decoding); None
    # where an engine does not say (the peers).
    encode_s: float | None = None

    @property
    def looped(self) -> bool:
        return "loop" in self.stops

    @property
    def hit_max_length(self) -> bool:
        return "max_length" in self.stops


class Transcriber(Protocol):
    def transcribe(self, audio: np.ndarray, language: str | None, beam_size: int,
                   max_new_tokens: int) -> Transcript: ...


class Engine(Transcriber, Protocol):
    spec: str
    engine: str  # "asrquant-torch" | "asrquant-onnx" | a peer's name
    size_bytes: int  # the files it runs


@dataclass
class OursEngine:
    """A family's transcriber (whatever its session: torch or onnxruntime) as an :class:`Engine`."""

    spec: str
    transcriber: Transcriber
    size_bytes: int
    engine: str

    def transcribe(self, audio, language, beam_size, max_new_tokens) -> Transcript:
        return self.transcriber.transcribe(audio, language, beam_size, max_new_tokens)
