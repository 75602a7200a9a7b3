"""load_whisper on CT2 and Hugging Face directories: fields, round trips, layouts, bad files."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch

from asrquant.errors import ModelError
from asrquant.models.whisper import load as whisper_load
from asrquant.models.whisper.load import (
    from_hf_state_dict,
    load_whisper,
    to_hf_state_dict,
    write_hf_checkpoint,
)
from asrquant.models.whisper.model import Whisper, WhisperDims

from .conftest import needs_base, needs_tiny

SMALL = WhisperDims(n_mels=80, n_audio_ctx=16, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
                    n_vocab=300, n_text_ctx=12, n_text_state=64, n_text_head=2, n_text_layer=2)


def assert_same_weights(a: Whisper, b: Whisper) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert sa[name].dtype == sb[name].dtype == torch.float32, name
        assert torch.equal(sa[name], sb[name]), name
    assert torch.equal(a.encoder.positional_embedding, b.encoder.positional_embedding)


@needs_tiny
def test_tiny_en_checkpoint_fields(tiny_en):
    from asrquant.models.whisper.hub import resolve

    c = tiny_en
    assert c.format == "ct2" and c.dims == WhisperDims(80, 1500, 384, 6, 4, 51864, 448, 384, 6, 4)
    assert not c.model.training and all(p.dtype == torch.float32 for p in c.model.parameters())
    weights = resolve("whisper-tiny.en") / "model.bin"
    assert c.size_bytes == weights.stat().st_size
    assert c.source_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert c.source == str(weights.parent.resolve())
    assert 50256 in c.suppress_ids_begin and 220 in c.suppress_ids_begin and len(c.suppress_ids) == 90
    assert not c.multilingual and c.lang_ids == []  # English-only: no language to choose
    assert c.alignment_heads[0] == (1, 0)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(c.tokenizer_json))
    assert tok.token_to_id("<|startoftranscript|>") == 50257 and tok.token_to_id("<|endoftext|>") == 50256


@needs_base
def test_base_checkpoint_fields_and_repaired_tokenizer(base):
    from tokenizers import Tokenizer

    assert base.format == "ct2" and base.multilingual
    assert base.dims == WhisperDims(80, 1500, 512, 8, 6, 51865, 448, 512, 8, 6)
    assert base.size_bytes == 145217532
    tok = Tokenizer.from_file(str(base.tokenizer_json))
    assert len(base.lang_ids) == 99 and tok.id_to_token(base.lang_ids[0]) == "<|en|>"
    assert tok.id_to_token(base.lang_ids[-1]) == "<|su|>"
    # The shipped tokenizer.json lacks the merge "Ġ t"; the repaired one encodes " the" as one
    # token, the token the model itself emits.
    shipped = Tokenizer.from_file(str(base.source + "/tokenizer.json"))
    assert shipped.encode(" the", add_special_tokens=False).ids == [220, 3322]
    assert tok.encode(" the", add_special_tokens=False).ids == [264]
    assert tok.decode([264, 3857]) == " the cat"


@needs_tiny
def test_hf_round_trip_is_exact(tiny_en, tmp_path):
    out = write_hf_checkpoint(tiny_en, tmp_path / "hf")
    files = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"}
    assert {p.name for p in out.iterdir()} == files
    assert not list(tmp_path.glob(".hf.tmp-*"))  # atomic: nothing left beside it
    c = load_whisper(out)
    assert c.format == "hf" and c.dims == tiny_en.dims
    assert_same_weights(c.model, tiny_en.model)
    assert c.suppress_ids == tiny_en.suppress_ids and c.suppress_ids_begin == tiny_en.suppress_ids_begin
    assert c.lang_ids == tiny_en.lang_ids and c.alignment_heads == tiny_en.alignment_heads
    assert c.size_bytes == (out / "model.safetensors").stat().st_size


@needs_base
def test_hf_sharded_layout(base, tmp_path):
    from safetensors.torch import load_file, save_file

    single = write_hf_checkpoint(base, tmp_path / "single")
    sharded = tmp_path / "sharded"
    shutil.copytree(single, sharded)
    (sharded / "model.safetensors").unlink()
    sd = load_file(str(single / "model.safetensors"))
    names = sorted(sd)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for fname, keys in shards.items():
        save_file({k: sd[k] for k in keys}, str(sharded / fname), metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {k: f for f, ks in shards.items() for k in ks}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    c = load_whisper(sharded)
    assert_same_weights(c.model, base.model)
    assert c.lang_ids == base.lang_ids and c.multilingual
    assert c.size_bytes == sum((sharded / f).stat().st_size for f in shards)
    assert len(c.source_sha256) == 64 and c.source_sha256 != base.source_sha256
    # A shard named by the index but missing is named in the error.
    (sharded / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelError, match="model-00002-of-00002.safetensors: listed in"):
        load_whisper(sharded)


def test_hf_state_dict_names_match_transformers():
    pytest.importorskip("transformers")
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    ours = Whisper(SMALL)
    cfg = WhisperConfig(vocab_size=300, num_mel_bins=80, d_model=64, encoder_layers=2, decoder_layers=2,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=256,
                        decoder_ffn_dim=256, max_source_positions=16, max_target_positions=12,
                        pad_token_id=0, bos_token_id=0, eos_token_id=0, decoder_start_token_id=1)
    ref = WhisperForConditionalGeneration(cfg)
    expected = set(ref.state_dict()) - {"proj_out.weight"}
    sd = to_hf_state_dict(ours)
    assert set(sd) == expected
    back = from_hf_state_dict(sd, SMALL)
    assert_same_weights(back, ours)
    # WhisperModel names (no "model." prefix) and an explicit tied proj_out are accepted too.
    plain = {k.removeprefix("model."): v for k, v in sd.items()}
    plain["proj_out.weight"] = sd["model.decoder.embed_tokens.weight"]
    assert_same_weights(from_hf_state_dict(plain, SMALL), ours)


def test_hf_state_dict_errors():
    sd = to_hf_state_dict(Whisper(SMALL))
    missing = dict(sd)
    del missing["model.decoder.layers.1.fc2.weight"]
    with pytest.raises(ModelError, match="missing 1 weights, e.g. model.decoder.layers.1.fc2.weight"):
        from_hf_state_dict(missing, SMALL)
    extra = dict(sd, **{"model.decoder.layers.2.fc2.weight": torch.zeros(1)})
    with pytest.raises(ModelError, match="does not know: model.decoder.layers.2.fc2.weight"):
        from_hf_state_dict(extra, SMALL)
    wrong = dict(sd, **{"model.encoder.conv1.weight": torch.zeros(64, 128, 3)})
    with pytest.raises(ModelError, match="model.encoder.conv1.weight' has shape \\[64, 128, 3\\]"):
        from_hf_state_dict(wrong, SMALL)
    untied = dict(sd, **{"proj_out.weight": torch.ones(300, 64)})
    with pytest.raises(ModelError, match="not tied"):
        from_hf_state_dict(untied, SMALL)


@needs_tiny
def test_bad_directories(tiny_en, tmp_path):
    hf = write_hf_checkpoint(tiny_en, tmp_path / "hf")
    # Corrupt safetensors.
    (hf / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(ModelError, match="model.safetensors: not a readable safetensors file"):
        load_whisper(hf)
    # No config.json.
    write_hf_checkpoint(tiny_en, hf)
    (hf / "config.json").unlink()
    with pytest.raises(ModelError, match="config.json: missing"):
        load_whisper(hf)
    # Not a Whisper config.
    (hf / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelError, match="model_type is 'bert'"):
        load_whisper(hf)
    # Pickle only.
    pickle_dir = tmp_path / "pickle"
    pickle_dir.mkdir()
    (pickle_dir / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelError, match="pickle checkpoints are not loaded"):
        load_whisper(pickle_dir)
    # Empty directory.
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="empty: not a Whisper checkpoint"):
        load_whisper(tmp_path / "empty")
    # A truncated CT2 model.bin.
    from asrquant.models.whisper.hub import resolve

    ct2 = tmp_path / "ct2"
    shutil.copytree(resolve("whisper-tiny.en"), ct2)
    data = (ct2 / "model.bin").read_bytes()
    (ct2 / "model.bin").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelError, match=rf"{ct2 / 'model.bin'}: truncated at byte"):
        load_whisper(ct2)
    # A CT2 model of another kind.
    import numpy as np

    from .test_ct2_reader import write_ct2

    write_ct2(ct2 / "model.bin", {"x": ("float32", np.zeros(2, np.float32))}, spec="TransformerSpec")
    with pytest.raises(ModelError, match="a CTranslate2 TransformerSpec, not a Whisper model"):
        load_whisper(ct2)


@needs_tiny
def test_ct2_without_tokenizer_json_builds_one_from_the_vocabulary(tiny_en, tmp_path):
    from tokenizers import Tokenizer

    from asrquant.models.whisper.hub import resolve

    ct2 = tmp_path / "ct2"
    shutil.copytree(resolve("whisper-tiny.en"), ct2)
    (ct2 / "tokenizer.json").unlink()
    c = load_whisper(ct2)
    assert c.tokenizer_json.parent.name == "tokenizers"
    built = Tokenizer.from_file(str(c.tokenizer_json))
    shipped = Tokenizer.from_file(str(tiny_en.tokenizer_json))
    text = " Please remind me to print the forms; naïve café, 3:45pm — don't!"
    assert built.encode(text, add_special_tokens=False).ids == shipped.encode(text, add_special_tokens=False).ids
    assert built.token_to_id("<|notimestamps|>") == 50362 and built.token_to_id("<|0.00|>") == 50363
    assert built.decode(built.encode(text, add_special_tokens=False).ids) == text
    (ct2 / "vocabulary.txt").unlink()
    with pytest.raises(ModelError, match="no tokenizer.json, vocabulary.json or vocabulary.txt"):
        load_whisper(ct2)


@needs_tiny
def test_hashes_are_cached(tiny_en, monkeypatch):
    from asrquant import artifact
    from asrquant.models.whisper.hub import resolve

    weights = resolve("whisper-tiny.en") / "model.bin"
    first = whisper_load.weights_sha256([weights])

    def boom(*a, **k):
        raise AssertionError("hashed again")

    monkeypatch.setattr(artifact, "sha256_file", boom)
    assert whisper_load.weights_sha256([weights]) == first == tiny_en.source_sha256
