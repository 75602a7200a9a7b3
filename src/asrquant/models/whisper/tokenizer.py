"""Whisper's tokenizer through the `tokenizers` library, and the prompt it builds.

Special tokens are looked up by their text in the checkpoint's own tokenizer.json, never by
fixed ids: English-only and multilingual checkpoints number them differently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from ...errors import ModelError

_LANG_TOKEN = re.compile(r"^<\|([a-z]{2,3}|haw|yue)\|>$")


@dataclass(frozen=True)
class WhisperSpecials:
    eot: int
    sot: int
    transcribe: int
    translate: int | None
    notimestamps: int
    sot_prev: int | None
    sot_lm: int | None
    no_speech: int | None
    languages: dict[str, int]


class WhisperTokenizer:
    def __init__(self, tokenizer_json: str | Path, multilingual: bool):
        path = Path(tokenizer_json)
        try:
            self.tk = Tokenizer.from_file(str(path))
        except Exception as e:  # the tokenizers library raises a bare Exception on bad JSON
            raise ModelError(f"{path}: not a usable tokenizer.json ({e})") from None
        self.multilingual = multilingual
        self.specials = self._find_specials(path)

    def _id(self, text: str, path: Path, required: bool = True) -> int | None:
        i = self.tk.token_to_id(text)
        if i is None and required:
            raise ModelError(f"{path}: special token {text} is missing")
        return i

    def _find_specials(self, path: Path) -> WhisperSpecials:
        vocab = self.tk.get_added_tokens_decoder()
        languages = {}
        for i, tok in vocab.items():
            m = _LANG_TOKEN.match(tok.content)
            if m:
                languages[m.group(1)] = i
        no_speech = self._id("<|nospeech|>", path, False)
        return WhisperSpecials(
            eot=self._id("<|endoftext|>", path),
            sot=self._id("<|startoftranscript|>", path),
            transcribe=self._id("<|transcribe|>", path),
            translate=self._id("<|translate|>", path, False),
            notimestamps=self._id("<|notimestamps|>", path),
            sot_prev=self._id("<|startofprev|>", path, False),
            sot_lm=self._id("<|startoflm|>", path, False),
            no_speech=no_speech if no_speech is not None else self._id("<|nocaptions|>", path, False),
            languages=languages,
        )

    @property
    def eot(self) -> int:
        return self.specials.eot

    @property
    def timestamp_begin(self) -> int:
        return self.specials.notimestamps + 1

    def language_id(self, language: str) -> int:
        try:
            return self.specials.languages[language]
        except KeyError:
            raise ModelError(f"unknown language code {language!r}; "
                             f"known: {', '.join(sorted(self.specials.languages))}") from None

    def prompt(self, language: str | None, task: str = "transcribe") -> list[int]:
        """The start-of-transcript sequence, without timestamps.

        English-only checkpoints take no language or task token (as openai-whisper does)."""
        s = self.specials
        if not self.multilingual:
            return [s.sot, s.notimestamps]
        if language is None:
            raise ModelError("a multilingual prompt needs a language (detect it first)")
        task_id = s.transcribe if task == "transcribe" else s.translate
        if task_id is None:
            raise ModelError(f"this checkpoint has no {task} token")
        return [s.sot, self.language_id(language), task_id, s.notimestamps]

    def encode(self, text: str) -> list[int]:
        return self.tk.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self.tk.decode([int(i) for i in ids if int(i) < self.eot], skip_special_tokens=True).strip()
