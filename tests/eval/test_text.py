from asrquant.eval.text import is_character_lang, normalize


def test_english_lowercases_and_splits_on_punctuation():
    assert normalize("Hello, World! It's 5 o'clock.", "en") == ["hello", "world", "it", "s", "5", "o", "clock"]


def test_english_unicode_punctuation_becomes_space():
    # curly quotes, em dash, ellipsis, inverted question mark, CJK full stop
    text = "\u201cWell\u201d\u2014he said\u2026 \u00bfno?\u3002Done"
    assert normalize(text, "en") == ["well", "he", "said", "no", "done"]


def test_english_keeps_symbols_and_numbers():
    # currency and maths symbols are not punctuation (category S*); no number normalisation
    assert normalize("$20 + 3 = twenty-three", "en") == ["$20", "+", "3", "=", "twenty", "three"]


def test_english_collapses_whitespace():
    assert normalize("  a\tb\n\u3000c  ", "en") == ["a", "b", "c"]
    assert normalize("", "en") == []
    assert normalize("...!?", "en") == []


def test_chinese_characters_without_spaces_or_punctuation():
    assert normalize("欢迎大家，来体验 达摩院！", "zh") == list("欢迎大家来体验达摩院")


def test_chinese_code_switch_latin_is_lowercased_characters():
    assert normalize("路 Sintra 在", "cmn") == ["路", "s", "i", "n", "t", "r", "a", "在"]


def test_character_language_codes():
    for lang in ("zh", "ZH", "cmn", "yue", "zh-CN", "zh_TW", "cmn_hans_cn", "ja", "ja_jp", "jpn", "th"):
        assert is_character_lang(lang), lang
    for lang in ("en", "de", "ko", "eng"):  # Korean is written with spaces between words
        assert not is_character_lang(lang), lang


def test_japanese_is_scored_by_characters_not_as_one_word():
    assert normalize("今日は、いい天気です。", "ja") == list("今日はいい天気です")
