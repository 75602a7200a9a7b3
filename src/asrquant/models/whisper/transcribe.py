"""Whisper transcription over any session: 30 s windows, language, prompt, decoding rules.

Shared by the torch reference and the onnxruntime runner; imports no torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ...decoding import DecodeOptions, LogitRules, decode
from ...features import log_mel
from ...transcript import Transcript
from .tokenizer import WhisperTokenizer

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 30 * SAMPLE_RATE
# Windows per encoder call for sessions that batch (long audio). One: on an AVX2 CPU two windows
# per run cost more CPU than two runs at 1 thread and were no faster at 2, with the same tokens
# (benchmarks/onnx-speed/README.md); the batched path stays for CPUs where larger GEMMs pay.
ENCODE_BATCH = 1


@dataclass(frozen=True)
class WhisperGeneration:
    """What the checkpoint's config says about decoding."""

    suppress_ids: tuple[int, ...]
    suppress_ids_begin: tuple[int, ...]
    n_mels: int


class WhisperTranscriber:
    def __init__(self, session, tokenizer: WhisperTokenizer, generation: WhisperGeneration):
        self.session = session
        self.tokenizer = tokenizer
        self.generation = generation
        self.rules = LogitRules(
            eot=tokenizer.eot,
            suppress=tuple(generation.suppress_ids),
            suppress_begin=tuple(generation.suppress_ids_begin),
            # Without-timestamps decoding: a timestamp token can only be noise.
            suppress_from=tokenizer.timestamp_begin,
        )

    def detect_language(self, enc) -> str:
        langs = self.tokenizer.specials.languages
        logits, _ = self.session.prefill(enc, np.array([self.tokenizer.specials.sot], dtype=np.int64), 1)
        codes, ids = zip(*langs.items())
        return codes[int(np.argmax(logits[0, list(ids)]))]

    def transcribe(self, audio: np.ndarray, language: str | None = None, beam_size: int = 1,
                   max_new_tokens: int = 224, loop_guard: bool = True) -> Transcript:
        """Consecutive 30 s windows, each decoded on its own (no conditioning on earlier text)."""
        opts = DecodeOptions(beam_size=beam_size, max_new_tokens=max_new_tokens, loop_guard=loop_guard)
        out = Transcript(text="", language=language if self.tokenizer.multilingual else "en")
        texts = []
        out.encode_s = 0.0
        for enc in self._encoded_windows(audio, out):
            if self.tokenizer.multilingual and out.language is None:
                out.language = self.detect_language(enc)
            prompt = self.tokenizer.prompt(out.language if self.tokenizer.multilingual else None)
            result = decode(self.session, enc, prompt, self.rules, opts)
            out.tokens += result.tokens
            out.stops.append(result.stopped)
            texts.append(self.tokenizer.decode(result.tokens))
        out.text = " ".join(t for t in texts if t)
        return out

    def _encoded_windows(self, audio: np.ndarray, out: Transcript):
        """Each 30 s window's encoder output, in order. With ENCODE_BATCH > 1 a session with
        ``encode_batch`` gets up to that many windows in one call (one encoder run: fewer, larger
        GEMMs); otherwise one window at a time. Windows are encoded only as the decoding reaches them, so memory holds
        at most one batch of encoder outputs."""
        n_windows = max(1, -(-len(audio) // WINDOW_SAMPLES))
        mels = (log_mel(audio[w * WINDOW_SAMPLES : (w + 1) * WINDOW_SAMPLES], n_mels=self.generation.n_mels)
                for w in range(n_windows))
        batch = ENCODE_BATCH if hasattr(self.session, "encode_batch") else 1
        for start in range(0, n_windows, batch):
            group = [next(mels) for _ in range(min(batch, n_windows - start))]
            t = time.perf_counter()
            encs = self.session.encode_batch(group) if batch > 1 else [self.session.encode(group[0])]
            out.encode_s += time.perf_counter() - t
            yield from encs
