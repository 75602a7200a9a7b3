"""Text normalisation of the Voices-in-the-Wild benchmark, applied to reference and hypothesis
alike before scoring.

English (and any language written with spaces, Korean included): lowercase, every Unicode
punctuation character (category P*) becomes a space, split on whitespace -> words (WER).
Languages written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer, Burmese):
every character except whitespace and punctuation, lowercased so that embedded Latin names match
whatever their case -> characters (CER). Split on whitespace, a Japanese sentence would be one
"word", right or wrong as a whole.
No number normalisation: "twenty" and "20" are different words.
"""

from __future__ import annotations

import unicodedata

# ISO 639-1/-3 codes (and Chinese's usual macrolanguage members) scored by character.
CHARACTER_LANGS = frozenset({"zh", "zho", "chi", "cmn", "yue", "wuu", "nan", "hak", "gan", "hsn",
                             "ja", "jpn", "th", "tha", "lo", "lao", "km", "khm", "my", "mya", "bur"})


def is_character_lang(lang: str) -> bool:
    """True for the codes of languages written without spaces, with or without a region or script
    tail ("zh-CN", "cmn_hans_cn", "ja_jp")."""
    return lang.lower().replace("_", "-").split("-")[0] in CHARACTER_LANGS


def normalize(text: str, lang: str) -> list[str]:
    """The tokens `text` is scored on: words, or characters for a language written without spaces."""
    text = text.lower()
    if is_character_lang(lang):
        return [c for c in text if not c.isspace() and not _is_punctuation(c)]
    return "".join(" " if _is_punctuation(c) else c for c in text).split()


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")
