"""Load a Whisper checkpoint (Hugging Face or CTranslate2 directory, or a registry name).

    load_whisper("whisper-base")              # registry name (asrquant.models.whisper.hub)
    load_whisper("path/to/faster-whisper")    # model.bin + config.json + tokenizer.json
    load_whisper("path/to/openai-whisper-hf") # config.json + model(-*).safetensors + tokenizer.json

Whatever the source, the result is our :class:`~asrquant.models.whisper.model.Whisper` in float32 and
eval mode, plus what decoding needs beside the weights (tokenizer, suppressed tokens, language
ids). Each format's weight names are mapped by one small table: ``_CT2_BLOCK`` and ``_HF_BLOCK``.
No pickle is ever read: safetensors for Hugging Face, our own reader for model.bin.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ...errors import ModelError
from ...weights import check_finite
from .ct2_reader import CT2Model, read_ct2
from .detect import FAMILY
from .model import Whisper, WhisperDims, sinusoids


@dataclass
class WhisperCheckpoint:
    model: Whisper
    dims: WhisperDims
    tokenizer_json: Path
    suppress_ids: list[int]
    suppress_ids_begin: list[int]
    lang_ids: list[int]  # <|xx|> language tokens; empty for English-only (.en) models
    source: str
    source_sha256: str
    size_bytes: int
    format: str  # "ct2" | "hf"
    alignment_heads: list[tuple[int, int]] = field(default_factory=list)  # (layer, head), for word timing
    family: str = FAMILY  # its folder in asrquant.families

    @property
    def multilingual(self) -> bool:
        # Whisper's own rule (openai/whisper tokenizer): the multilingual vocabulary has 51865+ tokens.
        return self.dims.n_vocab >= 51865


def load_whisper(spec: str | os.PathLike) -> WhisperCheckpoint:
    """A registry name, or a Hugging Face or CTranslate2 Whisper directory -> WhisperCheckpoint."""
    from .hub import resolve

    path = resolve(spec)
    directory = path.parent if path.is_file() else path
    if (directory / "model.bin").is_file():
        return _load_ct2(directory)
    if _hf_weight_files(directory, required=False):
        return _load_hf(directory)
    if (directory / "pytorch_model.bin").is_file():
        raise ModelError(
            f"{directory / 'pytorch_model.bin'}: pickle checkpoints are not loaded (unsafe); "
            "save the model with safetensors (model.save_pretrained(..., safe_serialization=True))"
        )
    raise ModelError(
        f"{directory}: not a Whisper checkpoint: expected model.bin (CTranslate2) or "
        "model.safetensors / model.safetensors.index.json (Hugging Face)"
    )


# --------------------------------------------------------------------------------------------
# CTranslate2 (faster-whisper) directories

# Our module in a block -> (CT2 scope in layer_N, index of the slice in a fused tensor, slices).
# CT2 fuses self-attention q,k,v into linear_0 and cross-attention k,v into linear_1.
_CT2_BLOCK = {
    "attn.query": ("self_attention/linear_0", 0, 3),
    "attn.key": ("self_attention/linear_0", 1, 3),
    "attn.value": ("self_attention/linear_0", 2, 3),
    "attn.out": ("self_attention/linear_1", 0, 1),
    "attn_ln": ("self_attention/layer_norm", 0, 1),
    "cross_attn.query": ("attention/linear_0", 0, 1),
    "cross_attn.key": ("attention/linear_1", 0, 2),
    "cross_attn.value": ("attention/linear_1", 1, 2),
    "cross_attn.out": ("attention/linear_2", 0, 1),
    "cross_attn_ln": ("attention/layer_norm", 0, 1),
    "mlp.fc1": ("ffn/linear_0", 0, 1),
    "mlp.fc2": ("ffn/linear_1", 0, 1),
    "mlp_ln": ("ffn/layer_norm", 0, 1),
}
_CT2_TOP = {
    "encoder.conv1": "encoder/conv1",
    "encoder.conv2": "encoder/conv2",
    "encoder.ln_post": "encoder/layer_norm",
    "decoder.token_embedding": "decoder/embeddings",
    "decoder.ln": "decoder/layer_norm",
}
_CT2_PARAM = {"weight": "weight", "bias": "bias"}
_CT2_LN_PARAM = {"weight": "gamma", "bias": "beta"}
# Variables that describe the network rather than hold weights; checked or ignored, not loaded.
_CT2_META = {
    "encoder/num_heads", "decoder/num_heads", "decoder/activation", "decoder/alibi",
    "decoder/alignment_heads", "decoder/alignment_layer", "decoder/pre_norm",
    "decoder/scale_embeddings", "decoder/start_from_zero_embedding",
    "encoder/position_encodings/encodings", "decoder/position_encodings/encodings",
}
_CT2_GELU = 3  # ctranslate2.specs.common_spec.Activation.GELU


def _ct2_source(name: str) -> tuple[str, int, int]:
    """Our state-dict name -> (CT2 variable, slice index, number of slices)."""
    if name == "decoder.positional_embedding":
        return "decoder/position_encodings/encodings", 0, 1
    module, param = name.rsplit(".", 1)
    m = re.fullmatch(r"(encoder|decoder)\.blocks\.(\d+)\.(.+)", module)
    if m:
        scope, index, parts = _CT2_BLOCK[m.group(3)]
        prefix = f"{m.group(1)}/layer_{m.group(2)}/{scope}"
    else:
        prefix, index, parts = _CT2_TOP[module], 0, 1
    table = _CT2_LN_PARAM if prefix.endswith("layer_norm") else _CT2_PARAM
    return f"{prefix}/{table[param]}", index, parts


def _ct2_dims(ct2: CT2Model) -> WhisperDims:
    def n_layers(side: str) -> int:
        return len({m.group(1) for n in ct2.names() if (m := re.match(rf"{side}/layer_(\d+)/", n))})

    def heads(side: str, n_state: int) -> int:
        # Whisper's heads are 64 wide in every size; old specs did not store num_heads.
        return int(ct2.scalar(f"{side}/num_heads")) if f"{side}/num_heads" in ct2 else n_state // 64

    try:
        conv1 = ct2.variables["encoder/conv1/weight"].shape
        emb = ct2.variables[ct2.resolve("decoder/embeddings/weight")].shape
        text_ctx = ct2.variables["decoder/position_encodings/encodings"].shape[0]
    except KeyError as e:
        raise ModelError(f"{ct2.path}: no variable {e} — not a Whisper model ({ct2.spec_name})") from None
    audio_pos = ct2.variables.get("encoder/position_encodings/encodings")
    return WhisperDims(
        n_mels=conv1[1],
        n_audio_ctx=audio_pos.shape[0] if audio_pos else 1500,
        n_audio_state=conv1[0],
        n_audio_head=heads("encoder", conv1[0]),
        n_audio_layer=n_layers("encoder"),
        n_vocab=emb[0],
        n_text_ctx=text_ctx,
        n_text_state=emb[1],
        n_text_head=heads("decoder", emb[1]),
        n_text_layer=n_layers("decoder"),
    )


def _check_ct2_flags(ct2: CT2Model) -> None:
    """Refuse CT2 variants that our network does not compute."""
    expect = {
        "decoder/activation": _CT2_GELU,
        "decoder/pre_norm": 1,
        "decoder/scale_embeddings": 0,
        "decoder/alibi": 0,
    }
    for name, value in expect.items():
        if name in ct2 and int(ct2.scalar(name)) != value:
            raise ModelError(f"{ct2.path}: {name} = {ct2.scalar(name)}, Whisper expects {value}")
    proj = "decoder/projection/weight"
    if proj in ct2 and ct2.resolve(proj) != ct2.resolve("decoder/embeddings/weight"):
        if not np.array_equal(ct2.array(proj), ct2.array("decoder/embeddings/weight")):
            raise ModelError(f"{ct2.path}: the output projection is not tied to the token embedding")


def ct2_state_dict(ct2: CT2Model, dims: WhisperDims) -> dict[str, torch.Tensor]:
    """Our state dict (float32) from a parsed CT2 Whisper model; encoder positions included."""
    names = _our_names(dims)
    cache: dict[str, np.ndarray] = {}
    used: set[str] = set()
    sd: dict[str, torch.Tensor] = {}
    for name, shape in names.items():
        if name == "encoder.positional_embedding":
            if "encoder/position_encodings/encodings" in ct2:
                sd[name] = torch.from_numpy(ct2.array("encoder/position_encodings/encodings"))
            continue
        var, index, parts = _ct2_source(name)
        if var not in ct2:
            raise ModelError(f"{ct2.path}: variable '{var}' is missing (needed for {name})")
        if var not in cache:
            cache[var] = ct2.array(var)
            used.add(ct2.resolve(var))
            used.add(ct2.resolve(var) + "_scale")
        value = np.array_split(cache[var], parts, axis=0)[index] if parts > 1 else cache[var]
        if tuple(value.shape) != shape:
            raise ModelError(
                f"{ct2.path}: '{var}' gives {name} the shape {list(value.shape)}, expected {list(shape)}"
            )
        sd[name] = torch.from_numpy(np.ascontiguousarray(value))
    # The self-attention key bias that CT2 stores (zeros, from the fused q,k,v) is dropped: a bias
    # on the keys adds the same q.b to every score of a query, which the softmax cancels.
    # Scalars are flags and sizes (checked in _check_ct2_flags); a tensor left over would be a
    # weight that our network does not compute.
    leftover = {n for n, v in ct2.variables.items() if v.shape} - used - _CT2_META - {"decoder/projection/weight"}
    if leftover:
        raise ModelError(f"{ct2.path}: variables this loader does not know: {', '.join(sorted(leftover)[:5])}")
    return sd


def _load_ct2(directory: Path) -> WhisperCheckpoint:
    weights = directory / "model.bin"
    ct2 = read_ct2(weights)
    if ct2.spec_name and ct2.spec_name != "WhisperSpec":
        raise ModelError(f"{weights}: a CTranslate2 {ct2.spec_name}, not a Whisper model (WhisperSpec)")
    _check_ct2_flags(ct2)
    dims = _ct2_dims(ct2)
    model = _build(dims, ct2_state_dict(ct2, dims), str(weights))
    config = _read_json(directory / "config.json", required=False)
    tokenizer = _ct2_tokenizer(directory)
    return WhisperCheckpoint(
        model=model,
        dims=dims,
        tokenizer_json=tokenizer,
        suppress_ids=list(config.get("suppress_ids") or []),
        suppress_ids_begin=list(config.get("suppress_ids_begin") or []),
        lang_ids=_lang_ids(config.get("lang_ids"), tokenizer, dims),
        source=str(directory.resolve()),
        source_sha256=weights_sha256([weights]),
        size_bytes=weights.stat().st_size,
        format="ct2",
        alignment_heads=[tuple(h) for h in config.get("alignment_heads") or []],
    )


# --------------------------------------------------------------------------------------------
# Hugging Face directories

_HF_BLOCK = {
    "attn.query": "self_attn.q_proj",
    "attn.key": "self_attn.k_proj",
    "attn.value": "self_attn.v_proj",
    "attn.out": "self_attn.out_proj",
    "attn_ln": "self_attn_layer_norm",
    "cross_attn.query": "encoder_attn.q_proj",
    "cross_attn.key": "encoder_attn.k_proj",
    "cross_attn.value": "encoder_attn.v_proj",
    "cross_attn.out": "encoder_attn.out_proj",
    "cross_attn_ln": "encoder_attn_layer_norm",
    "mlp.fc1": "fc1",
    "mlp.fc2": "fc2",
    "mlp_ln": "final_layer_norm",
}
_HF_TOP = {
    "encoder.conv1": "model.encoder.conv1",
    "encoder.conv2": "model.encoder.conv2",
    "encoder.ln_post": "model.encoder.layer_norm",
    "decoder.token_embedding": "model.decoder.embed_tokens",
    "decoder.ln": "model.decoder.layer_norm",
    "encoder.positional_embedding": "model.encoder.embed_positions.weight",
    "decoder.positional_embedding": "model.decoder.embed_positions.weight",
}
_HF_TIED = "proj_out.weight"


def hf_name(name: str) -> str:
    """Our state-dict name -> the name in WhisperForConditionalGeneration's state dict."""
    if name in _HF_TOP:
        return _HF_TOP[name]
    module, param = name.rsplit(".", 1)
    m = re.fullmatch(r"(encoder|decoder)\.blocks\.(\d+)\.(.+)", module)
    if m:
        return f"model.{m.group(1)}.layers.{m.group(2)}.{_HF_BLOCK[m.group(3)]}.{param}"
    return f"{_HF_TOP[module]}.{param}"


def to_hf_state_dict(model: Whisper) -> dict[str, torch.Tensor]:
    """Our model -> a WhisperForConditionalGeneration state dict (proj_out is tied, so left out)."""
    sd = dict(model.state_dict())
    sd["encoder.positional_embedding"] = model.encoder.positional_embedding
    return {hf_name(k): v.detach().clone().contiguous() for k, v in sd.items()}


def from_hf_state_dict(sd: dict[str, torch.Tensor], dims: WhisperDims, source: str = "state dict") -> Whisper:
    """A WhisperForConditionalGeneration (or WhisperModel) state dict -> our Whisper, float32."""
    sd = {k if k.startswith(("model.", "proj_out.")) else f"model.{k}": v for k, v in sd.items()}
    ours: dict[str, torch.Tensor] = {}
    missing = []
    for name, shape in _our_names(dims).items():
        key = hf_name(name)
        if key not in sd:
            if name != "encoder.positional_embedding":  # optional: the sinusoids are recomputed
                missing.append(key)
            continue
        value = sd[key].to(torch.float32)
        if tuple(value.shape) != shape:
            raise ModelError(f"{source}: '{key}' has shape {list(value.shape)}, expected {list(shape)}")
        ours[name] = value
    if missing:
        raise ModelError(f"{source}: missing {len(missing)} weights, e.g. {', '.join(missing[:3])}")
    expected = {hf_name(n) for n in _our_names(dims)} | {_HF_TIED}
    unexpected = sorted(set(sd) - expected)
    if unexpected:
        raise ModelError(f"{source}: weights this loader does not know: {', '.join(unexpected[:5])}")
    if _HF_TIED in sd and not torch.equal(sd[_HF_TIED].float(), ours["decoder.token_embedding.weight"]):
        raise ModelError(f"{source}: proj_out.weight is not tied to the token embedding")
    return _build(dims, ours, source)


def _hf_weight_files(directory: Path, required: bool = True) -> list[Path]:
    single = directory / "model.safetensors"
    index = directory / "model.safetensors.index.json"
    if single.is_file():
        return [single]
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelError(f"{index}: no 'weight_map'")
        files = [directory / name for name in sorted(set(weight_map.values()))]
        for f in files:
            if not f.is_file():
                raise ModelError(f"{f}: listed in {index.name} but missing")
        return files
    shards = sorted(directory.glob("model-*-of-*.safetensors"))
    if shards or not required:
        return shards
    raise ModelError(f"{directory}: no model.safetensors or model.safetensors.index.json")


def _read_safetensors(files: list[Path]) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    sd: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            sd.update(load_file(str(f)))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise ModelError(f"{f}: not a readable safetensors file ({e})") from None
    return sd


def hf_dims(config: dict, source: str = "config.json") -> WhisperDims:
    """WhisperDims from a Hugging Face Whisper config.json."""
    if config.get("model_type") != "whisper":
        raise ModelError(f"{source}: model_type is {config.get('model_type')!r}, not 'whisper'")
    try:
        d = int(config["d_model"])
        dims = WhisperDims(
            n_mels=int(config.get("num_mel_bins", 80)),
            n_audio_ctx=int(config.get("max_source_positions", 1500)),
            n_audio_state=d,
            n_audio_head=int(config["encoder_attention_heads"]),
            n_audio_layer=int(config["encoder_layers"]),
            n_vocab=int(config["vocab_size"]),
            n_text_ctx=int(config.get("max_target_positions", 448)),
            n_text_state=d,
            n_text_head=int(config["decoder_attention_heads"]),
            n_text_layer=int(config["decoder_layers"]),
        )
    except KeyError as e:
        raise ModelError(f"{source}: missing {e}") from None
    for key in ("encoder_ffn_dim", "decoder_ffn_dim"):
        if int(config.get(key, 4 * d)) != 4 * d:
            raise ModelError(f"{source}: {key} = {config[key]}; this Whisper needs 4 * d_model = {4 * d}")
    if config.get("activation_function", "gelu") != "gelu" or config.get("scale_embedding", False):
        raise ModelError(f"{source}: activation/scale_embedding differ from Whisper's (gelu, no scaling)")
    return dims


def _load_hf(directory: Path) -> WhisperCheckpoint:
    config = _read_json(directory / "config.json")
    dims = hf_dims(config, str(directory / "config.json"))
    files = _hf_weight_files(directory)
    model = from_hf_state_dict(_read_safetensors(files), dims, str(files[0] if len(files) == 1 else directory))
    gen = _read_json(directory / "generation_config.json", required=False)
    tokenizer = _hf_tokenizer(directory)
    lang_to_id = gen.get("lang_to_id") or {}
    return WhisperCheckpoint(
        model=model,
        dims=dims,
        tokenizer_json=tokenizer,
        suppress_ids=list(gen.get("suppress_tokens") or config.get("suppress_tokens") or []),
        suppress_ids_begin=list(gen.get("begin_suppress_tokens") or config.get("begin_suppress_tokens") or []),
        lang_ids=_lang_ids(list(lang_to_id.values()), tokenizer, dims),
        source=str(directory.resolve()),
        source_sha256=weights_sha256(files),
        size_bytes=sum(f.stat().st_size for f in files),
        format="hf",
        alignment_heads=[tuple(h) for h in gen.get("alignment_heads") or []],
    )


# --------------------------------------------------------------------------------------------
# Shared pieces


def _our_names(dims: WhisperDims) -> dict[str, tuple[int, ...]]:
    """Every tensor our Whisper holds for these dims (name -> shape), without allocating it."""
    with torch.device("meta"):
        model = Whisper(dims)
    names = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    names["encoder.positional_embedding"] = tuple(model.encoder.positional_embedding.shape)
    return names


def _build(dims: WhisperDims, sd: dict[str, torch.Tensor], source: str) -> Whisper:
    # Built on the meta device and filled by assignment: no random init of weights that are
    # overwritten anyway (seconds for the large sizes).
    with torch.device("meta"):
        model = Whisper(dims)
    positions = sd.pop("encoder.positional_embedding", None)
    check_finite(sd, source)
    try:
        model.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as e:
        raise ModelError(f"{source}: weights do not fit the model ({str(e).splitlines()[0]})") from None
    # Fine-tunes keep their own (normally sinusoidal) encoder positions: use theirs when given.
    if positions is None:
        positions = sinusoids(dims.n_audio_ctx, dims.n_audio_state)
    model.encoder.positional_embedding = positions.to(torch.float32).contiguous()
    # Inference weights: no autograd bookkeeping when a caller forgets torch.no_grad().
    return model.float().eval().requires_grad_(False)


def _read_json(path: Path, required: bool = True) -> dict:
    if not path.is_file():
        if required:
            raise ModelError(f"{path}: missing")
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return value


# Hashes ---------------------------------------------------------------------------------------


def weights_sha256(files: list[Path]) -> str:
    """sha256 of one weights file; for several, sha256 of their sorted 'name:sha256' lines.

    Hashes are cached in <cache>/hashes.json keyed by absolute path, size and mtime, so a
    checkpoint is hashed once, not on every load.
    """
    digests = {f.name: _file_sha256(f) for f in files}
    if len(files) == 1:
        return next(iter(digests.values()))
    lines = "".join(f"{name}:{digest}\n" for name, digest in sorted(digests.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    from ...artifact import sha256_file
    from ...cache import cache_dir

    path = path.resolve()
    st = path.stat()
    key = str(path)
    stamp = {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    cache_file = cache_dir() / "hashes.json"
    try:
        cache = json.loads(cache_file.read_text())
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key)
    if isinstance(entry, dict) and {k: entry.get(k) for k in stamp} == stamp and "sha256" in entry:
        return entry["sha256"]
    digest = sha256_file(path)
    cache[key] = {**stamp, "sha256": digest}
    try:
        _atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only cache only costs a re-hash next time
    return digest


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# Tokenizers -----------------------------------------------------------------------------------
# Whisper's tokenizer is GPT-2's byte-level BPE plus special tokens, and its vocabulary is in
# rank order: the 256 byte tokens, then every merged token in the order its merge was learned
# (tiktoken's ranks are the ids). That order alone defines the merges, which lets us
#   - build a tokenizer.json from a CT2 vocabulary.txt/.json when no tokenizer.json ships, and
#   - repair a tokenizer.json that lost merges: the multilingual Whisper tokenizer.json in
#     circulation (the one beside faster-whisper-base, for one) lacks the first merge "Ġ t", so
#     " the" encodes as [" ", "the"] instead of the single token the model emits.
# Built or repaired files go to <cache>/tokenizers/<hash>.json, once.

_SPECIAL = re.compile(r"<\|[^|]*\|>")
_NOT_LANGUAGES = {"<|endoftext|>", "<|startoftranscript|>", "<|translate|>", "<|transcribe|>",
                  "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>", "<|nospeech|>"}


def _ct2_tokenizer(directory: Path) -> Path:
    if (directory / "tokenizer.json").is_file():
        return checked_tokenizer(directory / "tokenizer.json")
    for name in ("vocabulary.json", "vocabulary.txt"):
        vocab_file = directory / name
        if vocab_file.is_file():
            return _cached_tokenizer([vocab_file], lambda: _tokenizer_from_ranked_vocab(vocab_file))
    raise ModelError(f"{directory}: no tokenizer.json, vocabulary.json or vocabulary.txt")


def _hf_tokenizer(directory: Path) -> Path:
    if (directory / "tokenizer.json").is_file():
        return checked_tokenizer(directory / "tokenizer.json")
    vocab, merges = directory / "vocab.json", directory / "merges.txt"
    if vocab.is_file() and merges.is_file():
        sources = [vocab, merges] + [p for p in (directory / "added_tokens.json",) if p.is_file()]
        return checked_tokenizer(_cached_tokenizer(sources, lambda: _tokenizer_from_vocab_merges(directory)))
    raise ModelError(f"{directory}: no tokenizer.json (or vocab.json + merges.txt)")


def _cached_tokenizer(sources: list[Path], build) -> Path:
    """<cache>/tokenizers/<hash of the sources>.json, made by ``build() -> str`` once."""
    from ...cache import cache_dir

    key = hashlib.sha256("".join(_file_sha256(p) for p in sources).encode()).hexdigest()[:16]
    out = cache_dir() / "tokenizers" / f"{key}.json"
    if not out.is_file():
        _atomic_write_text(out, build())
    return out


def _merges_from_ranks(tokens: list[str]) -> list[tuple[str, str]]:
    """The BPE merges implied by a byte-level vocabulary in rank order (tiktoken's definition).

    A token's merge is found by running BPE on its bytes with only lower-ranked merges; the two
    parts left are the pair whose merge produced it.
    """
    ranks = {t: i for i, t in enumerate(tokens) if t and not _SPECIAL.fullmatch(t)}
    merges = []
    for token, rank in ranks.items():
        parts = list(token)  # byte-level: one character per byte
        while len(parts) > 2:
            best_rank, i = min((ranks.get(a + b, rank), i) for i, (a, b) in enumerate(zip(parts, parts[1:])))
            if best_rank >= rank:
                break
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) == 2 and parts[0] in ranks and parts[1] in ranks:
            merges.append((parts[0], parts[1]))
    return merges


def checked_tokenizer(path: Path) -> Path:
    """``path``, or a repaired copy in the cache when its BPE merges are incomplete."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: not a readable tokenizer.json ({e})") from None
    model = data.get("model") or {}
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        return path
    vocab: dict[str, int] = model["vocab"]
    have = model.get("merges") or []
    # Every merged (multi-byte, non-special) token comes from exactly one merge.
    if len(have) >= sum(1 for t in vocab if len(t) > 1 and not _SPECIAL.fullmatch(t)):
        return path
    tokens = [""] * (max(vocab.values(), default=-1) + 1)
    for t, i in vocab.items():
        tokens[i] = t
    derived = _merges_from_ranks(tokens)
    if len(have) >= len(derived):
        return path

    def build() -> str:
        as_strings = not have or isinstance(have[0], str)
        model["merges"] = [f"{a} {b}" if as_strings else [a, b] for a, b in derived]
        return json.dumps(data, ensure_ascii=False)

    return _cached_tokenizer([path], build)


def _byte_level_bpe(vocab: dict[str, int], merges: list[tuple[str, str]], special: list[str]) -> str:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    return tok.to_str()


def _tokenizer_from_ranked_vocab(vocab_file: Path) -> str:
    """A tokenizer.json from a CT2 vocabulary (JSON list or one token a line, in id order)."""
    try:
        if vocab_file.suffix == ".json":
            tokens = json.loads(vocab_file.read_text(encoding="utf-8"))
        else:
            tokens = vocab_file.read_text(encoding="utf-8").split("\n")
            if tokens and tokens[-1] == "":
                tokens.pop()
    except (OSError, ValueError) as e:
        raise ModelError(f"{vocab_file}: unreadable vocabulary ({e})") from None
    named = [t for t in tokens if t] if isinstance(tokens, list) else []
    if not isinstance(tokens, list) or len(tokens) < 256 or len(set(named)) != len(named):
        raise ModelError(f"{vocab_file}: not a byte-level BPE vocabulary (too short, or duplicate tokens)")
    special = [t for t in tokens if _SPECIAL.fullmatch(t)]
    vocab = {t: i for i, t in enumerate(tokens) if t}
    return _byte_level_bpe(vocab, _merges_from_ranks(tokens), special)


def _tokenizer_from_vocab_merges(directory: Path):
    vocab = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
    lines = (directory / "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split(" ", 1)) for line in lines if line and not line.startswith("#version")]
    added = _read_json(directory / "added_tokens.json", required=False)
    vocab.update(added)
    config = _read_json(directory / "tokenizer_config.json", required=False)
    for key, entry in (config.get("added_tokens_decoder") or {}).items():
        vocab.setdefault(entry["content"], int(key))
    special = sorted((t for t in vocab if _SPECIAL.fullmatch(t)), key=vocab.get)
    return _byte_level_bpe(vocab, merges, special)


def _lang_ids(declared: list[int] | None, tokenizer_json: Path, dims: WhisperDims) -> list[int]:
    """The language-token ids, checked against the tokenizer.

    English-only models get none: they have no language to choose (their vocabulary still holds
    the tokens, but the model was not trained on them). A declared list whose ids are not all
    language tokens of this tokenizer is replaced by the tokenizer's own list: the CT2
    conversion of tiny.en, for one, stores the multilingual ids, one off from tiny.en's.
    """
    if dims.n_vocab < 51865:
        return []
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    langs = {t["id"] for t in data.get("added_tokens", []) if re.fullmatch(r"<\|[a-z]{2,3}\|>", t["content"])}
    if declared and set(declared) <= langs:
        return sorted(declared)
    return sorted(langs)


def special_ids(tokenizer_json: Path) -> dict[str, int]:
    """The Whisper special tokens present in a tokenizer.json, content -> id."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    out = {}
    for name in sorted(_NOT_LANGUAGES):
        i = tok.token_to_id(name)
        if i is not None:
            out[name] = i
    return out


# --------------------------------------------------------------------------------------------
# Hugging Face output: a config, a generation config, a directory, a transformers model


def hf_config(ckpt: WhisperCheckpoint) -> dict:
    d = ckpt.dims
    ids = special_ids(ckpt.tokenizer_json)
    eot = ids.get("<|endoftext|>", 50256)
    return {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "vocab_size": d.n_vocab,
        "num_mel_bins": d.n_mels,
        "d_model": d.n_audio_state,
        "encoder_layers": d.n_audio_layer,
        "encoder_attention_heads": d.n_audio_head,
        "encoder_ffn_dim": 4 * d.n_audio_state,
        "decoder_layers": d.n_text_layer,
        "decoder_attention_heads": d.n_text_head,
        "decoder_ffn_dim": 4 * d.n_text_state,
        "max_source_positions": d.n_audio_ctx,
        "max_target_positions": d.n_text_ctx,
        "activation_function": "gelu",
        "scale_embedding": False,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "pad_token_id": eot,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "decoder_start_token_id": ids.get("<|startoftranscript|>", eot + 1),
        "suppress_tokens": ckpt.suppress_ids,
        "begin_suppress_tokens": ckpt.suppress_ids_begin,
        "tie_word_embeddings": True,
        "use_cache": True,
        "is_encoder_decoder": True,  # as WhisperConfig writes it; transformers.js needs it to run the encoder first
    }


def generation_config(ckpt: WhisperCheckpoint) -> dict:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(ckpt.tokenizer_json))
    ids = special_ids(ckpt.tokenizer_json)
    cfg = hf_config(ckpt)
    gen = {
        "decoder_start_token_id": cfg["decoder_start_token_id"],
        "bos_token_id": cfg["bos_token_id"],
        "eos_token_id": cfg["eos_token_id"],
        "pad_token_id": cfg["pad_token_id"],
        "max_length": ckpt.dims.n_text_ctx,
        "suppress_tokens": ckpt.suppress_ids,
        "begin_suppress_tokens": ckpt.suppress_ids_begin,
        "is_multilingual": ckpt.multilingual,
    }
    if ckpt.multilingual:  # transformers detects the language whenever lang_to_id is set
        gen["lang_to_id"] = {tok.id_to_token(i): i for i in ckpt.lang_ids}
        gen["task_to_id"] = {t: ids[f"<|{t}|>"] for t in ("transcribe", "translate") if f"<|{t}|>" in ids}
    if "<|notimestamps|>" in ids:
        gen["no_timestamps_token_id"] = ids["<|notimestamps|>"]
    if "<|startofprev|>" in ids:
        gen["prev_sot_token_id"] = ids["<|startofprev|>"]
    if ckpt.alignment_heads:
        gen["alignment_heads"] = [list(h) for h in ckpt.alignment_heads]
    return gen


def write_hf_checkpoint(ckpt: WhisperCheckpoint, out_dir: str | os.PathLike) -> Path:
    """Write a Hugging Face Whisper directory (float32 safetensors), atomically."""
    from safetensors.torch import save_file

    from ...artifact import atomic_dir

    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        (tmp / "config.json").write_text(json.dumps(hf_config(ckpt), indent=2) + "\n")
        (tmp / "generation_config.json").write_text(json.dumps(generation_config(ckpt), indent=2) + "\n")
        save_file(to_hf_state_dict(ckpt.model), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        shutil.copyfile(ckpt.tokenizer_json, tmp / "tokenizer.json")
    return out


def build_transformers_whisper(ckpt: WhisperCheckpoint, attn_implementation: str = "sdpa"):
    """transformers' WhisperForConditionalGeneration with the same weights (float32, eval).

    ``attn_implementation`` "eager" computes attention with transformers' own matmuls and
    softmax instead of torch's fused kernel (the one our model uses): a more independent check.
    """
    try:
        from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration
    except ImportError:
        raise ModelError("the transformers reference needs: pip install 'transformers>=4.40'") from None

    config = WhisperConfig(**hf_config(ckpt))
    config._attn_implementation = attn_implementation
    model = WhisperForConditionalGeneration(config)
    result = model.load_state_dict(to_hf_state_dict(ckpt.model), strict=False)
    if set(result.missing_keys) - {_HF_TIED} or result.unexpected_keys:
        raise ModelError(
            f"{ckpt.source}: transformers model does not match: missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}"
        )
    model.tie_weights()
    model.generation_config = GenerationConfig(**generation_config(ckpt))
    return model.float().eval()


load = load_whisper  # the family's role name (asrquant.families)
