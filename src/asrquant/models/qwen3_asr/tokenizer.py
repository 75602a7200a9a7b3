"""Qwen3-ASR's tokenizer, prompt and output format. Imports no torch (the runtime uses it).

The prompt is what the checkpoint's chat template renders for a system message (the optional
context text) and a user message holding one audio, with the generation prompt:

    <|im_start|>system\\n{context}<|im_end|>\\n
    <|im_start|>user\\n<|audio_start|><|audio_pad|><|audio_end|><|im_end|>\\n
    <|im_start|>assistant\\n

The single <|audio_pad|> is then expanded to one placeholder per encoder token (the model
replaces those embeddings with the audio embeddings). A forced language appends
``language English<asr_text>`` so the model writes the transcript only. Unforced, the model
writes ``language English<asr_text>the transcript`` and then <|im_end|>.

Special tokens are read from the checkpoint's tokenizer files by their text, never assumed:
tokenizer.json when there is one; otherwise vocab.json + merges.txt (byte-level BPE with the
Qwen2 pre-tokenizer) plus the added tokens of tokenizer_config.json, assembled here into an
equivalent tokenizer.json for the `tokenizers` library.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from ...cache import cache_dir
from ...errors import ModelError

# The Qwen2 tokenizer's pre-tokenizer split (transformers' Qwen2TokenizerFast / Qwen2Converter).
QWEN2_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

ASR_TEXT_TAG = "<asr_text>"
LANGUAGE_PREFIX = "language "

# The languages qwen-asr accepts for a forced language, with ISO 639 codes for convenience.
SUPPORTED_LANGUAGES = {
    "zh": "Chinese", "en": "English", "yue": "Cantonese", "ar": "Arabic", "de": "German",
    "fr": "French", "es": "Spanish", "pt": "Portuguese", "id": "Indonesian", "it": "Italian",
    "ko": "Korean", "ru": "Russian", "th": "Thai", "vi": "Vietnamese", "ja": "Japanese",
    "tr": "Turkish", "hi": "Hindi", "ms": "Malay", "nl": "Dutch", "sv": "Swedish",
    "da": "Danish", "fi": "Finnish", "pl": "Polish", "cs": "Czech", "fil": "Filipino",
    "fa": "Persian", "el": "Greek", "ro": "Romanian", "hu": "Hungarian", "mk": "Macedonian",
}  # fmt: skip


@dataclass(frozen=True)
class Qwen3ASRSpecials:
    endoftext: int
    im_start: int
    im_end: int
    audio_start: int
    audio_end: int
    audio_pad: int
    asr_text: int

    @property
    def eos_ids(self) -> tuple[int, int]:
        """Generation ends at either (qwen-asr passes [<|im_end|>, <|endoftext|>])."""
        return (self.im_end, self.endoftext)


_SPECIAL_TEXT = {
    "endoftext": "<|endoftext|>",
    "im_start": "<|im_start|>",
    "im_end": "<|im_end|>",
    "audio_start": "<|audio_start|>",
    "audio_end": "<|audio_end|>",
    "audio_pad": "<|audio_pad|>",
    "asr_text": ASR_TEXT_TAG,
}


def normalize_language(language: str) -> str:
    """'en' / 'english' / 'ENGLISH' -> 'English'; ValueError for a language qwen-asr does not know."""
    s = str(language).strip()
    if not s:
        raise ValueError("empty language")
    if s.lower() in SUPPORTED_LANGUAGES:
        return SUPPORTED_LANGUAGES[s.lower()]
    name = s[:1].upper() + s[1:].lower()
    if name not in SUPPORTED_LANGUAGES.values():
        raise ValueError(f"unsupported language {language!r}; one of: {', '.join(SUPPORTED_LANGUAGES.values())}")
    return name


def render_prompt(context: str = "", language: str | None = None) -> str:
    """The chat template's text for one audio (one <|audio_pad|>, not yet expanded)."""
    text = (
        f"<|im_start|>system\n{context}<|im_end|>\n"
        "<|im_start|>user\n<|audio_start|><|audio_pad|><|audio_end|><|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    if language:
        text += f"{LANGUAGE_PREFIX}{normalize_language(language)}{ASR_TEXT_TAG}"
    return text


def parse_output(text: str, forced_language: str | None = None) -> tuple[str, str]:
    """Decoded output -> (language, transcript).

    ``language English<asr_text>Hello.`` -> ("English", "Hello."); ``language None<asr_text>``
    (silence) -> ("", ""); no tag -> ("", whole text). With a forced language the output is the
    transcript only. (qwen-asr also collapses characters or patterns repeated more than 20 times;
    that is not done here: the decoder's loop guard stops such output instead.)
    """
    s = (text or "").strip()
    if forced_language:
        return normalize_language(forced_language), s
    if ASR_TEXT_TAG not in s:
        return "", s
    meta, transcript = s.split(ASR_TEXT_TAG, 1)
    transcript = transcript.strip()
    if "language none" in meta.lower():
        return "", transcript
    for line in meta.splitlines():
        line = line.strip()
        if line.lower().startswith(LANGUAGE_PREFIX):
            value = line[len(LANGUAGE_PREFIX) :].strip()
            return (value[:1].upper() + value[1:].lower() if value else ""), transcript
    return "", transcript


# ---------------------------------------------------------------------------------------------
# Tokenizer files
# ---------------------------------------------------------------------------------------------


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: not a JSON object")
    return data


def added_tokens_from_config(path: Path) -> list[dict]:
    """The added tokens of a tokenizer_config.json (``added_tokens_decoder``: id -> token)."""
    cfg = read_json(path)
    decoder = cfg.get("added_tokens_decoder") or {}
    if not isinstance(decoder, dict):
        raise ModelError(f"{path}: 'added_tokens_decoder' is not an object")
    tokens = []
    for key, tok in decoder.items():
        try:
            tid = int(key)
            content = tok["content"] if isinstance(tok, dict) else str(tok)
        except (ValueError, KeyError, TypeError):
            raise ModelError(f"{path}: bad added_tokens_decoder entry {key!r}") from None
        t = tok if isinstance(tok, dict) else {}
        tokens.append(
            {
                "id": tid,
                "content": content,
                "single_word": bool(t.get("single_word", False)),
                "lstrip": bool(t.get("lstrip", False)),
                "rstrip": bool(t.get("rstrip", False)),
                "normalized": bool(t.get("normalized", False)),
                "special": bool(t.get("special", True)),
            }
        )
    return sorted(tokens, key=lambda t: t["id"])


def tokenizer_json_from_bpe(vocab_json: Path, merges_txt: Path, tokenizer_config: Path | None) -> dict:
    """A tokenizer.json (as a dict) equivalent to transformers' Qwen2TokenizerFast built from
    vocab.json + merges.txt (+ the added tokens of tokenizer_config.json)."""
    vocab = read_json(vocab_json)
    try:
        lines = merges_txt.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ModelError(f"{merges_txt}: missing") from None
    except UnicodeDecodeError as e:
        raise ModelError(f"{merges_txt}: not UTF-8 text ({e})") from None
    merges = []
    for i, line in enumerate(lines, 1):
        if not line.strip() or (i == 1 and line.startswith("#version")):
            continue
        if len(line.split(" ")) != 2:
            raise ModelError(f"{merges_txt}: line {i} is not a merge pair: {line[:60]!r}")
        merges.append(line)
    added = added_tokens_from_config(tokenizer_config) if tokenizer_config and tokenizer_config.is_file() else []
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT_REGEX}, "behavior": "Isolated", "invert": False},
                byte_level,
            ],
        },
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }


def resolve_tokenizer_json(model_dir: Path) -> Path:
    """The checkpoint's tokenizer.json, or one assembled from vocab.json + merges.txt +
    tokenizer_config.json and cached (keyed by their content) under ~/.cache/asrquant."""
    model_dir = Path(model_dir)
    tj = model_dir / "tokenizer.json"
    if tj.is_file():
        return tj
    vocab, merges, cfg = model_dir / "vocab.json", model_dir / "merges.txt", model_dir / "tokenizer_config.json"
    for p in (vocab, merges):
        if not p.is_file():
            raise ModelError(f"{p}: missing (a Qwen3-ASR checkpoint needs tokenizer.json, "
                             "or vocab.json and merges.txt)")
    data = tokenizer_json_from_bpe(vocab, merges, cfg)
    text = json.dumps(data, ensure_ascii=False)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    out = cache_dir() / "qwen3-asr-tokenizers" / digest / "tokenizer.json"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    return out


class Qwen3ASRTokenizer:
    def __init__(self, tokenizer_json: str | Path):
        path = Path(tokenizer_json)
        try:
            self.tk = Tokenizer.from_file(str(path))
        except Exception as e:  # the tokenizers library raises a bare Exception on bad JSON
            raise ModelError(f"{path}: not a usable tokenizer.json ({e})") from None
        self.path = path
        ids = {}
        for name, text in _SPECIAL_TEXT.items():
            tid = self.tk.token_to_id(text)
            if tid is None:
                raise ModelError(f"{path}: no {text} token; not a Qwen3-ASR tokenizer")
            ids[name] = tid
        self.specials = Qwen3ASRSpecials(**ids)

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> "Qwen3ASRTokenizer":
        return cls(resolve_tokenizer_json(Path(model_dir)))

    def encode(self, text: str) -> list[int]:
        return self.tk.encode(text, add_special_tokens=False).ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Text of ``ids``; special tokens (<|im_end|> ...) dropped, <asr_text> kept (it is an
        added token but not a special one), as qwen-asr decodes."""
        return self.tk.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def prompt_ids(self, n_audio_tokens: int, context: str = "", language: str | None = None) -> list[int]:
        """The prompt with <|audio_pad|> expanded to ``n_audio_tokens`` placeholders."""
        ids = self.encode(render_prompt(context, language))
        pad = self.specials.audio_pad
        if ids.count(pad) != 1:
            raise ModelError(f"{self.path}: the prompt does not tokenize to one <|audio_pad|>")
        i = ids.index(pad)
        return ids[:i] + [pad] * int(n_audio_tokens) + ids[i + 1 :]

    def transcript(self, generated_ids, forced_language: str | None = None) -> tuple[str, str]:
        """(language, transcript) of the generated ids (end token included or not)."""
        return parse_output(self.decode(generated_ids), forced_language)
