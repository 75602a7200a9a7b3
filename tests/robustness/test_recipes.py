"""Recipes, written and fuzzed here: refused naming the field, before the model is quantized,
and nothing is written. A recipe that would leave the model float is refused too."""

from __future__ import annotations

import numpy as np
import pytest

from asrquant.errors import AsrQuantError
from asrquant.quant.recipe import parse_recipe

from .conftest import cli, leftovers, refused

RULE = '[[rules]]\nbits = 4\ngroup_size = 32\n'
BAD = {
    "not_toml": ("[[rules]\nbits = 4", "not valid TOML"),
    "no_rules": ('name = "x"\n', "rules"),
    "rules_not_tables": ("rules = [1, 2]\n", "rules[0]"),
    "unknown_top_key": ('speed = "fast"\n' + RULE, "speed"),
    "unknown_rule_key": (RULE + "bitz = 3\n", "bitz"),
    "bits_missing": ("[[rules]]\ngroup_size = 32\n", "rules[0].bits"),
    "bits_zero": ("[[rules]]\nbits = 0\n", "rules[0].bits"),
    "bits_nine": ("[[rules]]\nbits = 9\n", "rules[0].bits"),
    "bits_text": ('[[rules]]\nbits = "4"\n', "rules[0].bits"),
    "bits_float": ("[[rules]]\nbits = 4.0\n", "rules[0].bits"),
    "group_zero": ("[[rules]]\nbits = 4\ngroup_size = 0\n", "rules[0].group_size"),
    "group_negative": ("[[rules]]\nbits = 4\ngroup_size = -2\n", "rules[0].group_size"),
    "group_not_dividing": ("[[rules]]\nbits = 4\ngroup_size = 7\n", "rules[0].group_size: 7 does not divide"),
    "group_larger_than_width": ("[[rules]]\nbits = 4\ngroup_size = 48\n", "rules[0].group_size: 48 does not divide"),
    "second_rule_group": ('[[rules]]\nmatch = "encoder.*"\nbits = 4\ngroup_size = 32\n'
                          "[[rules]]\nbits = 8\ngroup_size = 96\n", "rules[1].group_size"),
    "match_nothing": ('[[rules]]\nmatch = "model.layers.*"\nbits = 4\ngroup_size = 32\n', "rules[0].match"),
    "second_match_nothing": (RULE + '[[rules]]\nmatch = "nope.*"\nbits = 8\n', "rules[1].match"),
    "match_wrong_type": ("[[rules]]\nmatch = 5\nbits = 4\n", "rules[0].match"),
    "kind_unknown": ('[[rules]]\nkind = "conv"\nbits = 4\n', "rules[0].kind"),
    "ignore_everything": ('ignore = ["*"]\n' + RULE, "quantizes no module"),
    "format_unknown": ('[[rules]]\nformat = "int3"\nbits = 4\n', "rules[0].format"),
    "nvfp4_bits": ('[[rules]]\nformat = "nvfp4"\nbits = 8\n', "rules[0].bits"),
    "scale_dtype_unknown": ('[[rules]]\nbits = 4\nscale_dtype = "float8"\n', "rules[0].scale_dtype"),
    "symmetric_text": ('[[rules]]\nbits = 4\nsymmetric = "yes"\n', "rules[0].symmetric"),
    "algorithm_unknown": ('[[rules]]\nbits = 4\nalgorithm = "magic"\n', "rules[0].algorithm"),
    "option_unknown": ('[[rules]]\nbits = 4\nalgorithm = "rtn"\noptions = { speed = 1 }\n', "rules[0].options"),
    "gptq_option_type": ('[calibration]\nclips = 2\n[[rules]]\nbits = 4\nalgorithm = "gptq"\n'
                         'options = { damp = "x" }\n', "rules[0].options.damp"),
    "clips_negative": ("[calibration]\nclips = -1\n" + RULE, "calibration.clips"),
    "gptq_without_calib": ('[calibration]\nclips = 2\n[[rules]]\nbits = 4\ngroup_size = 32\nalgorithm = "gptq"\n',
                           "--calib"),
    "embedding_match_nothing": (RULE + '[embedding]\nmatch = "embed_tokens"\nbits = 8\ngroup_size = -1\n',
                                "embedding.match"),
    "embedding_group": (RULE + "[embedding]\nbits = 8\ngroup_size = 48\n", "embedding.group_size"),
    "empty_file": ("", "rules"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_recipe_is_refused_naming_the_field(capsys, small_dir, tmp_path, case):
    text, words = BAD[case]
    recipe = tmp_path / f"{case}.toml"
    recipe.write_text(text)
    out = tmp_path / "out"
    refused(cli(capsys, "quantize", small_dir, "--recipe", recipe, "--out", out, "--quiet"), words)
    assert not out.exists() and not leftovers(tmp_path)


@pytest.mark.parametrize("recipe,words", [
    ("no-such-recipe", "no-such-recipe"), ("missing.toml", "missing.toml"), ("DIR", "DIR"), ("BINARY", "BINARY"),
])
def test_recipe_that_cannot_be_read(capsys, small_dir, tmp_path, recipe, words):
    (tmp_path / "DIR").mkdir()
    (tmp_path / "BINARY").write_bytes(b"\xff\xfe\x00\x01" * 10)
    given = recipe if recipe == "no-such-recipe" else str(tmp_path / recipe)
    refused(cli(capsys, "quantize", small_dir, "--recipe", given, "--out", tmp_path / "out"), words)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seed", range(16))
def test_fuzzed_recipe_parses_or_names_the_recipe(seed):
    """Random byte edits of a real recipe: a valid recipe or one AsrQuantError naming the source."""
    from importlib.resources import files

    text = bytearray((files("asrquant.quant") / "recipes" / "gptq-int4-g64.toml").read_bytes())
    rng = np.random.default_rng(seed)
    for _ in range(int(rng.integers(1, 5))):
        text[int(rng.integers(len(text)))] = int(rng.integers(32, 127))
    try:
        parse_recipe(text.decode("utf-8", errors="replace"), source="fuzzed.toml")
    except AsrQuantError as e:
        assert "fuzzed.toml" in str(e)
