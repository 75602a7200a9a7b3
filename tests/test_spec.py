"""The one SPEC parser and the family detection behind it, on directories the tests write."""

import json

import pytest

from asrquant import families
from asrquant.cache import cache_dir
from asrquant.spec import parse, split_at


def _dir(path, name, data):
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_text(json.dumps(data))
    return path


def test_peers_are_parsed_with_their_model_and_compute_type():
    assert parse("faster-whisper:whisper-base:int8").peer == "faster-whisper"
    assert parse("faster-whisper:whisper-base:int8").compute == "int8"
    assert parse("faster-whisper:whisper-base").compute == "float32"
    assert parse("faster-whisper:/models/x:int8_float16").model == "/models/x"
    t = parse("transformers:whisper-tiny.en")
    assert (t.kind, t.peer, t.model, t.family) == ("peer", "transformers", "whisper-tiny.en", None)
    w = parse("whisper.cpp:/runs/base-q4/ggml-model.bin")
    assert (w.kind, w.peer, w.model) == ("peer", "whisper.cpp", "/runs/base-q4/ggml-model.bin")


def test_whisper_cpp_flash_attention_choice():
    assert parse("whisper.cpp:/runs/base-f16").compute == "flash"  # whisper.cpp's default
    off = parse("whisper.cpp:/runs/base-f16:noflash")
    assert (off.model, off.compute) == ("/runs/base-f16", "noflash")
    assert parse("whisper.cpp:/runs/base-f16:flash").model == "/runs/base-f16"
    assert parse("whisper.cpp:/runs/a:b").model == "/runs/a:b"  # any other suffix is part of the path


def test_an_onnx_export_and_its_variant(tmp_path):
    d = _dir(tmp_path / "art", "manifest.json", {"kind": "onnx", "family": "qwen3-asr"})
    plain, variant = parse(str(d)), parse(f"{d}@int4")
    assert (plain.kind, plain.family, plain.variant) == ("onnx", "qwen3-asr", None)
    assert (variant.kind, variant.model, variant.variant) == ("onnx", str(d), "int4")


def test_a_saved_quantized_directory_and_a_recipe_spec(tmp_path):
    q = _dir(tmp_path / "q", "config.json", {"kind": "asrquant-quantized", "family": "whisper"})
    assert (parse(str(q)).kind, parse(str(q)).family) == ("quantized", "whisper")
    r = parse("whisper-base@gptq-int4-g64")
    assert (r.kind, r.model, r.recipe, r.family) == ("model", "whisper-base", "gptq-int4-g64", "whisper")
    # A saved directory written before "family" was recorded is Whisper's.
    old = _dir(tmp_path / "old", "config.json", {"kind": "asrquant-quantized"})
    assert families.saved_family(old) == "whisper"


def test_an_existing_path_with_an_at_sign_stays_whole(tmp_path):
    d = tmp_path / "model@v2"
    d.mkdir()
    assert split_at(str(d)) == (str(d), None)
    assert parse(str(d)).recipe is None
    assert split_at("a@") == ("a@", None) and split_at("@b") == ("@b", None)


def test_family_is_read_from_the_config_never_the_name(tmp_path):
    qwen = {"model_type": "qwen3_asr", "thinker_config": {"model_type": "qwen3_asr_thinker"}}
    assert families.family_of(_dir(tmp_path / "whatever", "config.json", qwen)) == "qwen3-asr"
    named = _dir(tmp_path / "Qwen3-ASR-1.7B", "config.json", {"model_type": "whisper"})
    assert families.family_of(named) == "whisper"
    aligner = {"model_type": "qwen3_asr", "thinker_config": {"model_type": "qwen3_forced_aligner"}}
    assert families.family_of(_dir(tmp_path / "aligner", "config.json", aligner)) == families.DEFAULT
    # A corrupt config is nobody's: the default family's loader then says what it expected.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    assert families.family_of(bad) == families.DEFAULT and not families.is_quantized_dir(bad)


def test_every_family_has_every_role_module():
    for family in families.FAMILIES.values():
        for role, names in families.ROLES.items():
            module = family.module(role)
            assert module.__name__ == f"asrquant.models.{family.package}.{role}"
            assert [n for n in names if not hasattr(module, n)] == [], (family.name, role)
    with pytest.raises(ValueError, match="unknown family role"):
        families.module("whisper", "nope")
    with pytest.raises(ValueError, match="unknown model family 'ctc'"):
        families.get("ctc")


def test_the_cache_root_follows_asrquant_cache_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("ASRQUANT_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "a"
    monkeypatch.delenv("ASRQUANT_CACHE")
    assert cache_dir() == tmp_path / "x" / "asrquant"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "asrquant"
