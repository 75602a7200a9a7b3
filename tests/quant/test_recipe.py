import pytest

from asrquant.errors import AsrQuantError
from asrquant.quant.recipe import DEFAULT_IGNORE, builtin_recipes, load_recipe, module_kinds, parse_recipe
from asrquant.quant.refine import CHECK_UNITS
from asrquant.quant.scheme import QuantScheme

BUILTINS = ["int8", "rtn-int4-g64", "gptq-int4-g64", "gptq-int4-g64-emb8", "gptq-int4-g64-emb4",
            "gptq-int4-g64-enc32", "gptq-int4-g64-enc32-emb4", "awq-int4-g64", "mixed-8attn-4mlp",
            "nvfp4-awq-lite", "mxfp4", "gptq-int4-g64-enc32-emb4-dwq"]


def test_builtins_load():
    assert set(BUILTINS) <= set(builtin_recipes())
    for name in BUILTINS:
        r = load_recipe(name)
        assert r.name == name and r.rules and r.ignore == DEFAULT_IGNORE
        assert r.needs_calibration == (r.clips > 0)
    assert load_recipe("gptq-int4-g64").rules[0].option("act_order") is True
    assert load_recipe("nvfp4-awq-lite").rules[0].scheme == QuantScheme.nvfp4()
    for name in ("gptq-int4-g64-enc32", "gptq-int4-g64-enc32-emb4"):  # encoder in groups of 32, the rest 64
        r = load_recipe(name)
        assert r.rule_for("encoder.blocks.0.mlp.fc1").scheme.group_size == 32
        assert r.rule_for("audio_tower.layers.2.self_attn.q_proj").scheme.group_size == 32
        assert r.rule_for("decoder.blocks.0.cross_attn.key").scheme.group_size == 64
        assert r.rule_for("thinker.model.layers.0.mlp.down_proj").scheme.group_size == 64
    assert load_recipe("gptq-int4-g64-enc32-emb4").embedding is not None
    # The refined recipe is the cpu target's recipe plus end-to-end DWQ, on more clips: nothing else.
    base, dwq = load_recipe("gptq-int4-g64-enc32-emb4"), load_recipe("gptq-int4-g64-enc32-emb4-dwq")
    assert dwq.embedding == base.embedding and (base.clips, dwq.clips) == (32, 348)
    for b, d in zip(base.rules, dwq.rules, strict=True):
        assert (d.scheme, d.algorithm, d.match, d.kinds, dict(d.options)) == (b.scheme, b.algorithm, b.match, b.kinds,
                                                                              dict(b.options))
        assert d.refine == "dwq" and d.refine_levels() == ("e2e",)
        assert d.all_refine_options()["steps"] == dwq.clips - CHECK_UNITS  # one pass: no step trains on a check clip


def test_kinds_for_both_families():
    assert module_kinds("encoder.blocks.0.attn.query") == {"encoder", "attention"}
    assert module_kinds("decoder.blocks.3.cross_attn.key") == {"decoder", "attention", "cross_attention"}
    assert module_kinds("decoder.blocks.3.mlp.fc2") == {"decoder", "mlp"}
    assert module_kinds("thinker.audio_tower.layers.2.self_attn.out_proj") == {"encoder", "attention"}
    assert module_kinds("audio_tower.layers.2.fc1") == {"encoder", "mlp"}
    assert module_kinds("thinker.model.layers.5.self_attn.q_proj") == {"decoder", "attention"}
    assert module_kinds("model.layers.5.mlp.gate_proj") == {"decoder", "mlp"}
    assert module_kinds("audio_tower.proj1") == {"encoder"}


def test_mixed_rules_and_ignore():
    r = load_recipe("mixed-8attn-4mlp")
    assert r.rule_for("encoder.blocks.0.attn.out").scheme.bits == 8
    assert r.rule_for("decoder.blocks.0.mlp.fc1").scheme.bits == 4
    assert r.rule_for("thinker.model.layers.0.mlp.down_proj").scheme.bits == 4
    assert r.rule_for("thinker.model.layers.0.self_attn.k_proj").scheme.bits == 8
    assert r.rule_for("audio_tower.proj1") is None  # no rule matches: stays float
    assert load_recipe("int8").rule_for("thinker.lm_head") is None  # ignored


def test_first_match_wins_and_patterns(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text(
        'ignore = ["*.key"]\n[calibration]\nclips = 4\n'
        '[[rules]]\nmatch = ["decoder.*"]\nkind = ["mlp"]\nbits = 8\ngroup_size = -1\nsymmetric = true\n'
        '[[rules]]\nbits = 4\ngroup_size = 32\nalgorithm = "gptq"\noptions = { damp = 0.05 }\n'
    )
    r = load_recipe(p)
    assert r.name == "r" and r.clips == 4 and r.source == str(p)
    assert r.rule_for("decoder.blocks.0.mlp.fc1").scheme == QuantScheme.int(8, -1, True)
    assert r.rule_for("encoder.blocks.0.mlp.fc1").algorithm == "gptq"
    assert r.rule_for("encoder.blocks.0.mlp.fc1").option("damp") == 0.05
    assert r.rule_for("encoder.blocks.0.attn.key") is None
    assert r.to_dict()["rules"][1]["options"]["block_size"] == 128


@pytest.mark.parametrize(
    "text,key",
    [
        ("[[rules]]\nbits = 4\nwat = 1\n", "rules[0].wat"),
        ("foo = 1\n[[rules]]\nbits = 4\n", "foo"),
        ("[[rules]]\nbits = 9\n", "rules[0].bits"),
        ("[[rules]]\nbits = 4\ngroup_size = 0\n", "rules[0].group_size"),
        ("[[rules]]\nbits = 4\nalgorithm = 'magic'\n", "rules[0].algorithm"),
        ("[[rules]]\nbits = 4\nkind = 'ffn'\n", "rules[0].kind"),
        ("[[rules]]\nformat = 'nvfp4'\ngroup_size = 32\n", "rules[0].group_size"),
        ("[[rules]]\nbits = 'four'\n", "rules[0].bits"),
        ("[[rules]]\nbits = 4\nscale_dtype = 'float8'\n", "rules[0].scale_dtype"),
        ("[[rules]]\nformat = 'mxfp4'\nscale_dtype = 'float16'\n", "rules[0].scale_dtype"),
        ("[calibration]\nclips = 8\n[[rules]]\nbits = 4\nalgorithm = 'gptq'\noptions = { dampen = 1 }\n",
         "rules[0].options.dampen"),
        ("[calibration]\nclips = 8\n[[rules]]\nbits = 4\nalgorithm = 'gptq'\noptions = { static_groups = false }\n",
         "rules[0].options.static_groups"),
        ("[[rules]]\nbits = 4\nalgorithm = 'awq'\n", "calibration.clips"),
        ("[calibration]\nsamples = 3\n[[rules]]\nbits = 4\n", "calibration.samples"),
        ("name = 'x'\n", "rules"),
    ],
)
def test_bad_recipes_name_file_and_key(tmp_path, text, key):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(AsrQuantError) as e:
        load_recipe(p)
    assert str(p) in str(e.value) and key in str(e.value)


def test_bad_toml_and_unknown_name(tmp_path):
    p = tmp_path / "broken.toml"
    p.write_text("[[rules]\nbits = 4")
    with pytest.raises(AsrQuantError, match="broken.toml: not valid TOML"):
        load_recipe(p)
    with pytest.raises(AsrQuantError, match="unknown recipe 'int5'.*rtn-int4-g64"):
        load_recipe("int5")
    with pytest.raises(AsrQuantError, match="<recipe>"):
        parse_recipe("[[rules]]\nbits = 1\n")


def test_scale_dtype_per_rule_and_the_mlx_seed_has_float16_scales():
    r = parse_recipe("[[rules]]\nkind = 'mlp'\nbits = 4\nscale_dtype = 'bfloat16'\n[[rules]]\nbits = 8\n")
    assert [x.scheme.scale_dtype for x in r.rules] == ["bfloat16", "float32"]
    assert {x.scheme.scale_dtype for x in load_recipe("mixed-8attn-4mlp").rules} == {"float16"}


def test_dict_round_trip():
    from asrquant.quant.recipe import recipe_from_dict

    for name in BUILTINS:
        r = load_recipe(name)
        back = recipe_from_dict(r.to_dict(), source="quantization.json")
        assert back.to_dict() == r.to_dict()
        assert [x.scheme for x in back.rules] == [x.scheme for x in r.rules]
