"""Qwen3-ASR: loading checkpoints in the published layout, Mega-ASR's layout, bad files,
the prompt and output format, and the model's own invariants (cache, positions, chunking).
Runs in the main environment (no qwen-asr); the reference comparisons are in test_reference_parity.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from asrquant.errors import ModelError
from asrquant.models.qwen3_asr import load as ql
from asrquant.models.qwen3_asr.features import chunk_mel as chunk_mel_np
from asrquant.models.qwen3_asr.features import n_audio_tokens, qwen3_asr_log_mel
from asrquant.models.qwen3_asr.load import load_qwen3_asr, write_checkpoint
from asrquant.models.qwen3_asr.model import Qwen3ASRDims, chunk_mel
from asrquant.models.qwen3_asr.tokenizer import Qwen3ASRTokenizer, normalize_language, parse_output, render_prompt

from .qwen3_asr_fixture import random_model, small_dims, tone, write_random_checkpoint, write_tokenizer_files


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ASRQUANT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("qwen3-asr")
    write_random_checkpoint(out, small_dims(), seed=0, shards=3)
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def test_loads_sharded_checkpoint_in_published_layout(ckpt_dir):
    files = sorted(p.name for p in ckpt_dir.iterdir())
    assert "model.safetensors.index.json" in files and "model-00003-of-00003.safetensors" in files
    index = json.loads((ckpt_dir / "model.safetensors.index.json").read_text())
    assert all(k.startswith("thinker.") for k in index["weight_map"])
    assert "thinker.audio_tower.layers.0.self_attn.q_proj.weight" in index["weight_map"]
    assert "thinker.model.layers.1.mlp.gate_proj.weight" in index["weight_map"]

    ck = load_qwen3_asr(ckpt_dir)
    assert ck.dims == small_dims()
    _same_weights(ck.model, random_model(small_dims(), seed=0))
    assert ck.model.lm_head.weight is ck.model.model.embed_tokens.weight  # tied
    assert ck.variant == "qwen3-asr" and ck.router is None and ck.format == "hf"
    assert ck.specials.audio_pad == 151676 and ck.specials.audio_start == 151669
    assert ck.specials.audio_end == 151670 and ck.specials.asr_text == 151704
    assert ck.eos_ids == (151645, 151643)
    assert ck.size_bytes == sum(p.stat().st_size for p in ckpt_dir.glob("model-*.safetensors"))
    assert len(ck.source_sha256) == 64 and ck.model_dir == ckpt_dir.resolve()
    assert not ck.model.training
    tensors = list(ck.model.parameters()) + list(ck.model.buffers())
    assert not any(t.is_meta for t in tensors) and all(t.dtype == torch.float32 for t in tensors)
    torch.testing.assert_close(ck.model.audio_tower.positional_embedding,
                               random_model(small_dims()).audio_tower.positional_embedding)


def test_hash_is_stable_and_cached(ckpt_dir, tmp_path):
    a = load_qwen3_asr(ckpt_dir).source_sha256
    assert (tmp_path / "cache" / "sha256-cache.json").is_file()
    assert load_qwen3_asr(ckpt_dir).source_sha256 == a


def test_single_file_bf16_untied_and_tokenizer_json(tmp_path):
    dims = small_dims(tie=False)
    model = random_model(dims, seed=3)
    out = tmp_path / "ck"
    write_checkpoint(model, out, shards=1, dtype=torch.bfloat16)
    write_tokenizer_files(out)
    ck = load_qwen3_asr(out)
    assert (out / "model.safetensors").is_file()
    assert ck.model.lm_head.weight is not ck.model.model.embed_tokens.weight
    for k, v in model.state_dict().items():  # bf16 on disk, float32 in memory
        assert ck.model.state_dict()[k].dtype == torch.float32
        assert torch.equal(ck.model.state_dict()[k], v.to(torch.bfloat16).float()), k
    # A tokenizer.json next to the weights is used as it is.
    shutil.copy(ck.tokenizer_json, out / "tokenizer.json")
    assert load_qwen3_asr(out).tokenizer_json == out / "tokenizer.json"


def test_dims_round_trip_through_published_config():
    d = small_dims()
    assert Qwen3ASRDims.from_config(d.to_config()) == d
    assert Qwen3ASRDims.from_config(json.loads(json.dumps(Qwen3ASRDims().to_config()))) == Qwen3ASRDims()
    assert (d.chunk_frames, d.tokens_per_chunk, d.chunks_per_window, d.window_tokens) == (100, 13, 8, 104)


def test_hub_download_only_for_repo_ids(ckpt_dir, monkeypatch):
    import huggingface_hub

    calls = []

    def fake(repo_id, revision=None, **kw):
        calls.append((repo_id, revision))
        return str(ckpt_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    ck = load_qwen3_asr("Qwen/Qwen3-ASR-0.6B")
    assert calls == [("Qwen/Qwen3-ASR-0.6B", None)] and ck.dims == small_dims()

    def offline(repo_id, revision=None, **kw):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ModelError, match="could not download"):
        load_qwen3_asr("Qwen/Qwen3-ASR-0.6B")
    with pytest.raises(ModelError, match="no such directory"):
        load_qwen3_asr("./not/here")


# ---------------------------------------------------------------------------------------------
# Bad files: a ModelError that names the file
# ---------------------------------------------------------------------------------------------


def test_missing_and_bad_config(ckpt_dir, tmp_path):
    d = _copy(ckpt_dir, tmp_path / "a")
    (d / "config.json").unlink()
    with pytest.raises(ModelError, match="no config.json here"):
        load_qwen3_asr(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"config\.json: not valid JSON"):
        load_qwen3_asr(d)
    cfg = small_dims().to_config()
    del cfg["thinker_config"]["text_config"]["hidden_size"]
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match=r"config\.json: missing 'thinker_config\.text_config\.hidden_size'"):
        load_qwen3_asr(d)
    (d / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    with pytest.raises(ModelError, match="not a Qwen3-ASR config"):
        load_qwen3_asr(d)


def test_bad_weights(ckpt_dir, tmp_path):
    d = _copy(ckpt_dir, tmp_path / "b")
    (d / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(ModelError, match=r"model-00002-of-00003\.safetensors: missing"):
        load_qwen3_asr(d)
    (d / "model-00002-of-00003.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match=r"model-00002-of-00003\.safetensors: not a readable safetensors"):
        load_qwen3_asr(d)
    (d / "model.safetensors.index.json").unlink()
    with pytest.raises(ModelError, match=r"index\.json: missing"):
        load_qwen3_asr(d)


def test_missing_tensor_and_wrong_shape(tmp_path):
    from safetensors.torch import load_file, save_file

    d, _ = write_random_checkpoint(tmp_path / "c", shards=1)
    sd = load_file(str(d / "model.safetensors"))
    gone = dict(sd)
    del gone["thinker.model.layers.1.mlp.up_proj.weight"]
    save_file(gone, str(d / "model.safetensors"))
    with pytest.raises(ModelError,
                       match=r"model\.safetensors: missing tensor\(s\) thinker\.model\.layers\.1\.mlp\.up_proj"):
        load_qwen3_asr(d)
    sd["thinker.audio_tower.proj1.weight"] = torch.zeros(3, 3)
    save_file(sd, str(d / "model.safetensors"))
    with pytest.raises(ModelError, match=r"'thinker\.audio_tower\.proj1\.weight' has shape \(3, 3\)"):
        load_qwen3_asr(d)


def test_bad_tokenizer_files(ckpt_dir, tmp_path):
    d = _copy(ckpt_dir, tmp_path / "t")
    (d / "merges.txt").unlink()
    with pytest.raises(ModelError, match=r"merges\.txt: missing"):
        load_qwen3_asr(d)
    shutil.copy(ckpt_dir / "merges.txt", d / "merges.txt")
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["added_tokens_decoder"] = {k: v for k, v in cfg["added_tokens_decoder"].items()
                                   if v["content"] != "<|audio_pad|>"}
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match=r"no <\|audio_pad\|> token"):
        load_qwen3_asr(d)
    (d / "tokenizer_config.json").write_text("[]")
    with pytest.raises(ModelError, match=r"tokenizer_config\.json: not a JSON object"):
        load_qwen3_asr(d)


def test_file_instead_of_directory(ckpt_dir):
    with pytest.raises(ModelError, match="not a directory"):
        load_qwen3_asr(ckpt_dir / "config.json")


# ---------------------------------------------------------------------------------------------
# Mega-ASR: base checkpoint in a subfolder, LoRA adapter, optional router
# ---------------------------------------------------------------------------------------------


def _write_adapter(d: Path, model, r=4, alpha=8, seed=5) -> dict[str, torch.Tensor]:
    """A PEFT-style adapter on two decoder projections and one encoder projection; returns the
    expected deltas by our parameter name."""
    from safetensors.torch import save_file

    d.mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    targets = ["model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj", "audio_tower.layers.1.fc1"]
    mods = dict(model.named_modules())
    tensors, deltas = {}, {}
    for name in targets:
        w = mods[name].weight
        a = torch.randn(r, w.shape[1], generator=g) * 0.1
        b = torch.randn(w.shape[0], r, generator=g) * 0.1
        tensors[f"base_model.model.thinker.{name}.lora_A.weight"] = a
        tensors[f"base_model.model.thinker.{name}.lora_B.weight"] = b
        deltas[name + ".weight"] = (b @ a) * (alpha / r)
    save_file(tensors, str(d / "adapter_model.safetensors"))
    (d / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": r, "lora_alpha": alpha, "lora_dropout": 0.05, "fan_in_fan_out": False,
        "target_modules": ["q_proj", "down_proj", "fc1"], "bias": "none",
    }))  # fmt: skip
    return deltas


def _write_router(path: Path, seed=0):
    from safetensors.torch import save_file

    from asrquant.models.qwen3_asr.router import AudioQualityClassifier

    torch.manual_seed(seed)
    config = {"n_mels": 80, "d_model": 32, "nhead": 4, "dim_feedforward": 64, "max_len": 3000, "num_classes": 2}
    model = AudioQualityClassifier(**config)
    path.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"config": json.dumps({"model": config})})
    return model


def test_mega_asr_layout(tmp_path):
    root = tmp_path / "Mega-ASR"
    base_dir, base = write_random_checkpoint(root / "Qwen3-ASR-1.7B", shards=2, seed=1)
    deltas = _write_adapter(root / "mega-asr-merged", base)
    _write_router(root / "audio_quality_router" / "best_acc_model.safetensors")

    ck = load_qwen3_asr(root)
    assert ck.variant == "mega-asr" and ck.model_dir == base_dir.resolve()
    assert ck.adapter_dir == (root / "mega-asr-merged").resolve()
    assert sorted(ck.extra["merged_weights"]) == sorted(deltas)
    got, want = ck.model.state_dict(), base.state_dict()
    for k in want:
        expected = want[k] + deltas[k] if k in deltas else want[k]
        torch.testing.assert_close(got[k], expected, rtol=0, atol=1e-6, msg=k)
    use, p = ck.router.predict(tone(2.0))
    assert 0.0 <= p <= 1.0 and use == (p >= 0.5)

    plain = load_qwen3_asr(root, adapter=False, router=False)
    assert plain.variant == "mega-asr-base" and plain.router is None
    _same_weights(plain.model, base)
    assert plain.source_sha256 != ck.source_sha256


def test_mega_asr_bad_adapter(tmp_path):
    root = tmp_path / "Mega-ASR"
    _, base = write_random_checkpoint(root / "Qwen3-ASR-1.7B", shards=1)
    _write_adapter(root / "mega-asr-merged", base)
    (root / "mega-asr-merged" / "adapter_model.safetensors").unlink()
    with pytest.raises(ModelError, match=r"adapter_model\.safetensors: missing"):
        load_qwen3_asr(root)
    (root / "audio_quality_router").mkdir()
    (root / "audio_quality_router" / "best_acc_model.safetensors").write_bytes(b"nope")
    with pytest.raises(ModelError, match="best_acc_model.safetensors: not a readable audio-quality router"):
        load_qwen3_asr(root, adapter=False)


def test_several_checkpoints_are_ambiguous(ckpt_dir, tmp_path):
    root = tmp_path / "two"
    _copy(ckpt_dir, root / "a")
    _copy(ckpt_dir, root / "b")
    with pytest.raises(ModelError, match="several Qwen3-ASR checkpoints"):
        load_qwen3_asr(root)
    assert load_qwen3_asr(root / "a").dims == small_dims()


# ---------------------------------------------------------------------------------------------
# Prompt and output
# ---------------------------------------------------------------------------------------------


def test_prompt_layout(ckpt_dir):
    tok = Qwen3ASRTokenizer.from_dir(ckpt_dir)
    s = tok.specials
    ids = tok.prompt_ids(7)
    assert ids.count(s.audio_pad) == 7
    assert ids[0] == s.im_start and ids[-1] == tok.encode("\n")[0]
    i = ids.index(s.audio_pad)
    assert ids[i - 1] == s.audio_start and ids[i + 7] == s.audio_end
    assert tok.decode(ids, skip_special_tokens=False) == render_prompt().replace("<|audio_pad|>", "<|audio_pad|>" * 7)
    forced = tok.prompt_ids(7, language="en")
    assert forced[: len(ids)] == ids and forced[-1] == s.asr_text
    assert tok.decode(forced[len(ids) :]) == "language English<asr_text>"
    with_context = tok.prompt_ids(3, context="the cat")
    assert tok.decode(with_context, skip_special_tokens=False).startswith("<|im_start|>system\nthe cat<|im_end|>")


def test_output_parsing():
    assert parse_output("language English<asr_text>Hello there.") == ("English", "Hello there.")
    assert parse_output("language None<asr_text>") == ("", "")
    assert parse_output("just text") == ("", "just text")
    assert parse_output("language chinese\n<asr_text> 你好 ") == ("Chinese", "你好")
    assert parse_output("anything", forced_language="de") == ("German", "anything")
    assert normalize_language("ENGLISH") == "English" and normalize_language("yue") == "Cantonese"
    with pytest.raises(ValueError, match="unsupported language"):
        normalize_language("Klingon")


def test_decode_keeps_asr_text_drops_specials(ckpt_dir):
    tok = Qwen3ASRTokenizer.from_dir(ckpt_dir)
    ids = tok.encode("language English<asr_text>the cat") + [tok.specials.im_end]
    assert tok.transcript(ids) == ("English", "the cat")


# ---------------------------------------------------------------------------------------------
# The model itself
# ---------------------------------------------------------------------------------------------


def _reference_token_count(n):  # qwen-asr's _get_feat_extract_output_lengths, for 100-frame chunks
    leave = n % 100
    feat = (leave - 1) // 2 + 1
    return ((feat - 1) // 2 + 1 - 1) // 2 + 1 + (n // 100) * 13


@pytest.mark.parametrize("frames", [1, 2, 7, 8, 9, 57, 99, 100, 101, 199, 200, 801, 3000, 12345])
def test_token_counts_and_chunking(frames):
    d = small_dims()
    assert d.n_audio_tokens(frames) == n_audio_tokens(frames) == _reference_token_count(frames)
    mel = np.random.default_rng(frames).standard_normal((128, frames)).astype(np.float32)
    chunks_np, n_np = chunk_mel_np(mel)
    chunks_t, n_t = chunk_mel(torch.from_numpy(mel), d)
    assert n_np == n_t and np.array_equal(chunks_np, chunks_t.numpy())
    assert chunks_np.shape[0] % d.chunks_per_window == 0
    assert chunks_np.shape[2] == min(100, frames)


def test_features_shape():
    a = tone(1.234)
    mel = qwen3_asr_log_mel(a)
    assert mel.shape == (128, len(a) // 160) and mel.dtype == np.float32
    with pytest.raises(ValueError):
        qwen3_asr_log_mel(np.zeros(100, np.float32))


@torch.no_grad()
def test_cache_steps_match_full_pass_and_explicit_positions():
    m = random_model(small_dims(tie=False), seed=2)
    mel = torch.from_numpy(qwen3_asr_log_mel(tone(1.5)))
    audio = m.encode(mel)
    n = audio.shape[0]
    ids = torch.tensor([[151644, 10, 151669] + [151676] * n + [151670, 151645, 10, 11, 12, 13, 14]])
    full = m.prefill(ids, audio)[0]
    cut = ids.shape[1] - 4
    logits, k, v = m.prefill(ids[:, :cut], audio)
    torch.testing.assert_close(logits, full[:, :cut], atol=1e-4, rtol=0)
    for i in range(cut, ids.shape[1]):
        step, nk, nv = m.decode_tokens(ids[:, i : i + 1], k, v, position_offset=torch.tensor(i))
        torch.testing.assert_close(step[:, 0], full[:, i], atol=1e-4, rtol=0)
        k, v = torch.cat([k, nk], 3), torch.cat([v, nv], 3)
    assert k.shape == (2, 1, 2, ids.shape[1], 16)
    # the scatter equals masked_scatter of the audio into the placeholder embeddings
    emb = m.model.embed_tokens(ids)
    want = emb.masked_scatter((ids == 151676)[..., None].expand_as(emb), audio)
    torch.testing.assert_close(m.prompt_embeds(ids, audio), want, atol=0, rtol=0)


@torch.no_grad()
def test_encoder_windows_are_independent():
    """Tokens of one 104-token window do not see the next window (the reference's windowed
    attention): changing the audio after 8 s leaves the first window's embeddings unchanged."""
    m = random_model(small_dims(), seed=4)
    mel = torch.randn(128, 1700)
    a = m.encode(mel)
    mel2 = mel.clone()
    mel2[:, 900:] = torch.randn(128, 800)
    b = m.encode(mel2)
    assert a.shape == (m.dims.n_audio_tokens(1700), 64)
    torch.testing.assert_close(a[:104], b[:104], atol=0, rtol=0)
    assert not torch.allclose(a[104:], b[104:])


def test_dims_from_config_rejects_unsupported():
    cfg = small_dims().to_config()
    cfg["thinker_config"]["text_config"]["rope_scaling"]["rope_type"] = "yarn"
    with pytest.raises(ValueError, match="rope_type"):
        Qwen3ASRDims.from_config(cfg)
    with pytest.raises(ValueError, match="audio_config"):
        Qwen3ASRDims.from_config({"thinker_config": {}})


def test_loader_module_names_match_checkpoint_names():
    names = set(ql.to_hf_state_dict(random_model(small_dims())))
    assert "thinker.audio_tower.conv_out.weight" in names and "thinker.lm_head.weight" in names
    assert all(n.startswith(("thinker.audio_tower.", "thinker.model.", "thinker.lm_head.")) for n in names)
