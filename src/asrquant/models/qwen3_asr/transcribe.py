"""Qwen3-ASR transcription over any session (torch reference or onnxruntime); imports no torch.

Qwen3-ASR ends generation at either <|im_end|> or <|endoftext|>; the shared decoding loop knows
one end token, so :class:`Qwen3ASRLogitRules` folds the second into the first (the end logit is
the larger of the two): greedy and beam search then stop exactly where the reference stops.

:class:`EngineTranscriber` gives a Qwen3-ASR transcriber the interface every engine shares
(``transcribe(audio, language, beam_size, max_new_tokens) -> Transcript``, see
:mod:`asrquant.transcript`), so the CLI and the bench treat every family alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...decoding import DecodeOptions, DecodeResult, LogitRules, decode
from ...errors import AsrQuantError
from ...transcript import Transcript
from .features import n_audio_tokens, qwen3_asr_log_mel
from .tokenizer import (
    SUPPORTED_LANGUAGES,
    Qwen3ASRTokenizer,
    normalize_language,
)

LANGUAGE_CODES = {name: code for code, name in SUPPORTED_LANGUAGES.items()}


@dataclass(frozen=True)
class Qwen3ASRLogitRules(LogitRules):
    also_eot: tuple[int, ...] = ()  # further end tokens, folded into ``eot``

    def apply(self, logits: np.ndarray, first: bool) -> np.ndarray:
        logits = super().apply(logits, first)
        if self.also_eot:
            other = list(self.also_eot)
            logits[:, self.eot] = np.maximum(logits[:, self.eot], logits[:, other].max(axis=1))
            logits[:, other] = -np.inf
        return logits


def qwen3_asr_rules(eos_ids: tuple[int, ...]) -> Qwen3ASRLogitRules:
    return Qwen3ASRLogitRules(eot=int(eos_ids[0]), also_eot=tuple(int(i) for i in eos_ids[1:]))


@dataclass
class Qwen3ASRTranscript:
    text: str
    language: str
    result: DecodeResult


class Qwen3ASRTranscriber:
    """Audio -> (language, text) with any Qwen3-ASR session."""

    def __init__(self, session, tokenizer: Qwen3ASRTokenizer, n_window: int = 50, n_mels: int = 128):
        self.session, self.tokenizer = session, tokenizer
        self.rules = qwen3_asr_rules(tokenizer.specials.eos_ids)
        self.n_window, self.n_mels = n_window, n_mels

    def transcribe(self, audio: np.ndarray, language: str | None = None, context: str = "",
                   options: DecodeOptions = DecodeOptions()) -> Qwen3ASRTranscript:  # fmt: skip
        mel = qwen3_asr_log_mel(audio, self.n_mels)
        prompt = self.tokenizer.prompt_ids(n_audio_tokens(mel.shape[1], self.n_window), context, language)
        result = decode(self.session, self.session.encode(mel), prompt, self.rules, options)
        lang, text = self.tokenizer.transcript(result.tokens, language)
        return Qwen3ASRTranscript(text, lang, result)


@dataclass
class EngineTranscriber:
    """A :class:`Qwen3ASRTranscriber` behind the engine interface (``spec`` names it in errors)."""

    transcriber: Qwen3ASRTranscriber
    spec: str

    def transcribe(self, audio, language, beam_size, max_new_tokens) -> Transcript:
        try:
            forced = normalize_language(language) if language else None
        except ValueError as e:
            raise AsrQuantError(f"{self.spec}: {e}") from None
        options = DecodeOptions(beam_size=beam_size, max_new_tokens=max_new_tokens)
        out = self.transcriber.transcribe(audio, forced, options=options)
        # Whisper's engines report a language code ("en"); Qwen3-ASR writes the name ("English").
        code = LANGUAGE_CODES.get(out.language, out.language or None)
        return Transcript(out.text, code, list(out.result.tokens), [out.result.stopped])
