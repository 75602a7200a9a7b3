"""Load a Qwen3-ASR checkpoint (Hugging Face layout) into :class:`Qwen3ASR`.

Accepted:
    * a Qwen3-ASR checkpoint directory (Qwen/Qwen3-ASR-0.6B, Qwen/Qwen3-ASR-1.7B): config.json
      (``thinker_config.audio_config`` / ``text_config``), model.safetensors or sharded
      model-*.safetensors with model.safetensors.index.json, every tensor named ``thinker.*``;
      tokenizer.json, or vocab.json + merges.txt + tokenizer_config.json;
    * a Mega-ASR directory (zhifeixie/Mega-ASR): the base Qwen3-ASR-1.7B checkpoint in a
      subfolder (``Qwen3-ASR-1.7B/``), Mega-ASR's fine-tuned weights as a LoRA adapter in another
      (``mega-asr-merged/``: adapter_config.json + adapter_model.safetensors, optionally
      mega_lora_blocks.json), merged into the base weights here (W += B @ A * alpha / r), and an
      optional audio-quality router (``audio_quality_router/best_acc_model.safetensors`` or
      ``.pt``) that says per clip whether the fine-tuned weights should be used. Mega-ASR's own
      code mounts/unmounts the LoRA delta per clip; an exported model is one set of weights, so
      the loader gives the merged model (``adapter=True``, the default) or the base one
      (``adapter=False``), and the router, when present, as ``ckpt.router``;
    * a Hugging Face repo id (``Qwen/Qwen3-ASR-0.6B``): downloaded with huggingface_hub when the
      user is online (never in tests), then loaded as above.
Every bad or missing file raises :class:`asrquant.errors.ModelError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...cache import cache_dir
from ...errors import ModelError
from ...weights import check_finite
from .detect import FAMILY, is_checkpoint_dir
from .model import Qwen3ASR, Qwen3ASRDims
from .tokenizer import Qwen3ASRSpecials, Qwen3ASRTokenizer, read_json

PREFIX = "thinker."
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
ADAPTER_CONFIG = "adapter_config.json"
MEGA_BASE_NAMES = ("Qwen3-ASR-1.7B", "Qwen3-ASR-0.6B")
MEGA_ADAPTER_NAMES = ("mega-asr-merged",)
ROUTER_DIR = "audio_quality_router"


@dataclass
class Qwen3ASRCheckpoint:
    model: Qwen3ASR  # eval mode, float32
    dims: Qwen3ASRDims
    tokenizer_json: Path  # usable by tokenizers.Tokenizer.from_file
    specials: Qwen3ASRSpecials
    eos_ids: tuple[int, ...]
    languages: list[str]  # config.json support_languages (may be empty)
    source: str  # the spec as given, resolved
    source_sha256: str  # of the weights (and the adapter, when merged)
    size_bytes: int  # weights on disk (and the adapter, when merged)
    model_dir: Path  # the Qwen3-ASR checkpoint directory itself
    format: str = "hf"
    family: str = FAMILY
    variant: str = "qwen3-asr"  # "qwen3-asr" | "mega-asr" (adapter merged) | "mega-asr-base"
    adapter_dir: Path | None = None
    router: object | None = None  # router.AudioQualityRouter when present
    extra: dict = field(default_factory=dict)

    def tokenizer(self) -> Qwen3ASRTokenizer:
        return Qwen3ASRTokenizer(self.tokenizer_json)


# ---------------------------------------------------------------------------------------------
# Locating the files
# ---------------------------------------------------------------------------------------------


def _looks_like_repo_id(spec: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*", spec))


def download(repo_id: str, revision: str | None = None) -> Path:
    """snapshot_download of a hub repo (needs huggingface_hub and a network)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelError(f"{repo_id}: not a local directory, "
                         "and huggingface_hub is not installed to download it") from None
    try:
        return Path(snapshot_download(repo_id=repo_id, revision=revision))
    except Exception as e:  # offline, unknown repo, gated ...
        raise ModelError(f"{repo_id}: could not download from the hub ({type(e).__name__}: {e})") from None


@dataclass
class _Layout:
    model_dir: Path
    adapter_dir: Path | None
    router_path: Path | None
    mega: bool


def locate(root: Path) -> _Layout:
    """Find the Qwen3-ASR checkpoint, a Mega-ASR adapter and router under ``root``."""
    if is_checkpoint_dir(root):
        return _Layout(root, None, None, False)
    if (root / "config.json").is_file():
        cfg = read_json(root / "config.json")
        raise ModelError(f"{root / 'config.json'}: not a Qwen3-ASR config (model_type {cfg.get('model_type')!r})")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    candidates = [p for p in subdirs if is_checkpoint_dir(p)]
    named = [p for p in candidates if p.name in MEGA_BASE_NAMES]
    # Mega-ASR's vLLM path may leave a checkpoint with the adapter already merged next to the
    # base one; the base + adapter is preferred (same weights, and the base can be had too).
    plain = [p for p in candidates if "materialized" not in p.name]
    if named:
        model_dir = named[0]
    elif len(plain) == 1:
        model_dir = plain[0]
    elif len(candidates) == 1:
        model_dir = candidates[0]
    elif not candidates:
        raise ModelError(f"{root}: no config.json here and no Qwen3-ASR checkpoint in a subfolder")
    else:
        names = ", ".join(p.name for p in candidates)
        raise ModelError(f"{root}: several Qwen3-ASR checkpoints in subfolders ({names}); pass one of them")
    adapters = [p for p in subdirs if (p / ADAPTER_CONFIG).is_file()]
    adapter = next((p for p in adapters if p.name in MEGA_ADAPTER_NAMES), adapters[0] if len(adapters) == 1 else None)
    if adapter is None and len(adapters) > 1:
        raise ModelError(f"{root}: several LoRA adapters ({', '.join(p.name for p in adapters)}); "
                         "cannot tell which is Mega-ASR's")
    router = None
    rdir = root / ROUTER_DIR
    if rdir.is_dir():
        for name in ("best_acc_model.safetensors", "best_acc_model.pt"):
            if (rdir / name).is_file():
                router = rdir / name
                break
        else:
            found = sorted(list(rdir.glob("*.safetensors")) + list(rdir.glob("*.pt")))
            router = found[0] if found else None
    return _Layout(model_dir, adapter, router, True)


def weight_files(model_dir: Path) -> list[Path]:
    """The safetensors shard(s) of a checkpoint directory."""
    index = model_dir / INDEX
    if index.is_file():
        data = read_json(index)
        wm = data.get("weight_map")
        if not isinstance(wm, dict) or not wm:
            raise ModelError(f"{index}: no 'weight_map'")
        files = []
        for name in dict.fromkeys(wm.values()):
            if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
                raise ModelError(f"{index}: bad shard name {name!r}")
            p = model_dir / name
            if not p.is_file():
                raise ModelError(f"{p}: missing (listed in {INDEX})")
            files.append(p)
        return files
    single = model_dir / WEIGHTS
    if single.is_file():
        return [single]
    shards = sorted(model_dir.glob("model-*-of-*.safetensors"))
    if shards:
        raise ModelError(f"{index}: missing (the checkpoint has {len(shards)} shards but no index)")
    raise ModelError(f"{single}: missing (no {WEIGHTS} and no {INDEX} in {model_dir})")


def read_tensors(files: list[Path], dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Every tensor of the shard(s), converted to ``dtype`` one by one as it is read (so a bf16
    checkpoint never sits in memory twice)."""
    from safetensors import safe_open

    out: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt", device="cpu") as sf:
                for key in sf.keys():
                    if key in out:
                        raise ModelError(f"{f}: tensor {key!r} also in another shard")
                    t = sf.get_tensor(key)
                    out[key] = t.to(dtype) if dtype is not None and t.is_floating_point() else t
        except ModelError:
            raise
        except Exception as e:  # safetensors raises its own SafetensorError / OSError
            raise ModelError(f"{f}: not a readable safetensors file ({e})") from None
    return out


# ---------------------------------------------------------------------------------------------
# Hashing (cached by path, size and mtime)
# ---------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    st = path.stat()
    key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    cache = cache_dir() / "sha256-cache.json"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and key in known:
        return known[key]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    digest = h.hexdigest()
    try:
        known = known if isinstance(known, dict) else {}
        known[key] = digest
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(known))
        os.replace(tmp, cache)
    except OSError:
        pass
    return digest


def files_sha256(files: list[Path]) -> str:
    if len(files) == 1:
        return _sha256(files[0])
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}:{_sha256(f)}\n".encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Weights -> model
# ---------------------------------------------------------------------------------------------


def from_hf_state_dict(tensors: dict[str, torch.Tensor], dims: Qwen3ASRDims, where: str = "checkpoint") -> Qwen3ASR:
    """Build the model from ``thinker.*`` tensors (any float dtype; loaded as float32). The model
    is built on the meta device and takes the tensors as its parameters (no random init, no
    second copy of the weights)."""
    with torch.device("meta"):
        model = Qwen3ASR(dims)
    expected = model.state_dict()
    tied = dims.tie_word_embeddings
    sd = {}
    for key, value in tensors.items():
        if not key.startswith(PREFIX):
            continue  # nothing else is part of the ASR model
        name = key[len(PREFIX) :]
        if tied and name == "lm_head.weight":
            continue  # tied: the output projection is the embedding, as the reference ties it
        if name not in expected:
            raise ModelError(f"{where}: unexpected tensor {key!r} for this config")
        if tuple(value.shape) != tuple(expected[name].shape):
            raise ModelError(
                f"{where}: tensor {key!r} has shape {tuple(value.shape)}, "
                f"config.json implies {tuple(expected[name].shape)}"
            )
        sd[name] = value.to(torch.float32)
    missing = [k for k in expected if k not in sd and not (tied and k == "lm_head.weight")]
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise ModelError(f"{where}: missing tensor(s) {', '.join(PREFIX + m for m in missing[:3])}{more}")
    check_finite({PREFIX + k: v for k, v in sd.items()}, where)
    model.load_state_dict(sd, strict=False, assign=True)
    if tied:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.init_buffers()
    return model.eval()


def to_hf_state_dict(model: Qwen3ASR) -> dict[str, torch.Tensor]:
    """``thinker.*`` names, as a checkpoint stores them (lm_head included even when tied)."""
    return {PREFIX + k: v.detach().contiguous() for k, v in model.state_dict().items()}


def write_checkpoint(model: Qwen3ASR, out_dir: str | Path, shards: int = 2, dtype: torch.dtype = torch.float32,
                     extra_config: dict | None = None) -> Path:
    """Write config.json + model-0000i-of-0000n.safetensors + model.safetensors.index.json (or a
    single model.safetensors when shards == 1), as the published checkpoints are laid out.
    Tokenizer files are the caller's to add."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = model.dims.to_config()
    config.update(extra_config or {})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    sd = {k: v.to(dtype).clone() for k, v in to_hf_state_dict(model).items()}
    keys = list(sd)
    if shards <= 1:
        save_file(sd, str(out / WEIGHTS), metadata={"format": "pt"})
        return out
    per = -(-len(keys) // shards)
    weight_map, total = {}, 0
    for i in range(shards):
        part = {k: sd[k] for k in keys[i * per : (i + 1) * per]}
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        save_file(part, str(out / name), metadata={"format": "pt"})
        for k, v in part.items():
            weight_map[k] = name
            total += v.numel() * v.element_size()
    (out / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n")
    return out


# ---------------------------------------------------------------------------------------------
# Mega-ASR's LoRA adapter
# ---------------------------------------------------------------------------------------------

_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[A-Za-z0-9_-]+)?\.weight$")


def _module_name(raw: str) -> str:
    """PEFT/Mega-ASR adapter module names -> our module names
    (``base_model.model.thinker.model.layers.0.self_attn.q_proj`` -> ``model.layers.0.self_attn.q_proj``)."""
    name = raw.removeprefix("base_model.model.")
    if name.startswith("model.thinker."):
        name = name.removeprefix("model.")
    name = name.removeprefix("thinker.")
    if name.startswith("layers."):  # Mega-ASR's "thinker.layers." means the decoder layers
        name = "model." + name
    return name


def _pattern_value(patterns: dict, names: list[str], default):
    for key, value in (patterns or {}).items():
        for n in names:
            if n == key or re.fullmatch(rf"(.*\.)?{key}", n):
                return value
    return default


def lora_deltas(adapter_dir: Path, model: Qwen3ASR) -> dict[str, torch.Tensor]:
    """Weight deltas (float32, shaped like the target weights) of a PEFT LoRA adapter."""
    cfg_path = adapter_dir / ADAPTER_CONFIG
    cfg = read_json(cfg_path)
    st, binf = adapter_dir / "adapter_model.safetensors", adapter_dir / "adapter_model.bin"
    if st.is_file():
        state = read_tensors([st])
        wfile = st
    elif binf.is_file():
        try:
            state = torch.load(str(binf), map_location="cpu", weights_only=True)
        except Exception as e:
            raise ModelError(f"{binf}: not a readable tensor file ({e})") from None
        wfile = binf
    else:
        raise ModelError(f"{st}: missing (no LoRA weights in {adapter_dir})")
    blocks_path = adapter_dir / "mega_lora_blocks.json"
    blocks = read_json(blocks_path) if blocks_path.is_file() else {}
    r, alpha = cfg.get("r"), cfg.get("lora_alpha", 1)
    rslora = bool(cfg.get("use_rslora", False))
    fan_in_fan_out = bool(cfg.get("fan_in_fan_out", False))
    modules = dict(model.named_modules())

    pairs: dict[str, dict] = {}
    for key, tensor in state.items():
        m = _LORA_KEY.match(key)
        if not m:
            continue
        raw = m.group("module")
        entry = pairs.setdefault(_module_name(raw), {"raw": raw})
        entry[m.group("ab")] = tensor.to(torch.float32)
    if not pairs:
        raise ModelError(f"{wfile}: no LoRA tensors (*.lora_A.weight / *.lora_B.weight)")
    deltas = {}
    for name, p in pairs.items():
        if "A" not in p or "B" not in p:
            raise ModelError(f"{wfile}: {p['raw']} has only lora_{'A' if 'A' in p else 'B'}")
        mod = modules.get(name)
        if not isinstance(mod, torch.nn.Linear):
            raise ModelError(f"{wfile}: LoRA target {p['raw']!r} is not a linear layer of this model")
        a, b = p["A"], p["B"]
        names = [p["raw"], name, p["raw"].removeprefix("base_model.model."),
                 p["raw"].removeprefix("base_model.model.model.")]
        mblocks = next((blocks[n] for n in names if n in blocks), None)
        if mblocks:
            delta = torch.zeros(b.shape[0], a.shape[1])
            for blk in mblocks:
                s, e = int(blk["start"]), int(blk["end"])
                rank = int(blk.get("rank", e - s))
                delta += (b[:, s:e] @ a[s:e]) * (float(blk.get("alpha", rank)) / rank)
        else:
            rank = _pattern_value(cfg.get("rank_pattern"), names, r) or a.shape[0]
            al = _pattern_value(cfg.get("alpha_pattern"), names, alpha)
            scale = float(al) / (rank**0.5 if rslora else float(rank))
            delta = (b @ a) * scale
        if fan_in_fan_out:
            delta = delta.T
        if tuple(delta.shape) != tuple(mod.weight.shape):
            raise ModelError(f"{wfile}: LoRA delta for {p['raw']!r} is {tuple(delta.shape)}, "
                             f"weight is {tuple(mod.weight.shape)}")
        deltas[name + ".weight"] = delta
    return deltas


@torch.no_grad()
def merge_adapter(model: Qwen3ASR, adapter_dir: Path) -> list[str]:
    """Add the adapter's deltas to the model's weights in place; returns the weights changed."""
    deltas = lora_deltas(adapter_dir, model)
    params = dict(model.named_parameters())
    for name, delta in deltas.items():
        params[name].add_(delta)
    return sorted(deltas)


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def load_qwen3_asr(spec: str | Path, *, adapter: bool = True, router: bool = True,
                   revision: str | None = None) -> Qwen3ASRCheckpoint:
    """A Qwen3-ASR / Mega-ASR checkpoint directory, or a hub repo id when online."""
    path = Path(spec).expanduser()
    if path.is_dir():
        root = path.resolve()
    elif path.exists():
        raise ModelError(f"{path}: not a directory (a Qwen3-ASR checkpoint is a directory)")
    elif isinstance(spec, str) and _looks_like_repo_id(spec) and not spec.startswith((".", "/", "~")):
        root = download(spec, revision)
    else:
        raise ModelError(f"{spec}: no such directory")

    layout = locate(root)
    model_dir = layout.model_dir
    config = read_json(model_dir / "config.json")
    try:
        dims = Qwen3ASRDims.from_config(config)
    except (ValueError, TypeError) as e:
        raise ModelError(f"{model_dir / 'config.json'}: {e}") from None

    files = weight_files(model_dir)
    where = str(model_dir / INDEX) if len(files) > 1 or (model_dir / INDEX).is_file() else str(files[0])
    model = from_hf_state_dict(read_tensors(files, torch.float32), dims, where)

    tok = Qwen3ASRTokenizer.from_dir(model_dir)
    if tok.specials.audio_pad != dims.audio_token_id:
        raise ModelError(
            f"{model_dir / 'config.json'}: audio_token_id {dims.audio_token_id} is not the tokenizer's "
            f"<|audio_pad|> ({tok.specials.audio_pad})"
        )

    hashed = list(files)
    variant, adapter_dir = "qwen3-asr", None
    if layout.mega:
        variant = "mega-asr-base"
        if adapter and layout.adapter_dir is not None:
            merged = merge_adapter(model, layout.adapter_dir)
            adapter_dir = layout.adapter_dir
            variant = "mega-asr"
            hashed += [p for p in sorted(adapter_dir.iterdir()) if p.is_file()]
        elif layout.adapter_dir is None:
            variant = "qwen3-asr"
    router_obj = None
    if router and layout.router_path is not None:
        from .router import load_router

        router_obj = load_router(layout.router_path)

    langs = config.get("support_languages") or []
    return Qwen3ASRCheckpoint(
        model=model.eval(),
        dims=dims,
        tokenizer_json=tok.path,
        specials=tok.specials,
        eos_ids=tok.specials.eos_ids,
        languages=[str(x) for x in langs] if isinstance(langs, list) else [],
        source=str(root),
        source_sha256=files_sha256(hashed),
        size_bytes=sum(p.stat().st_size for p in hashed),
        model_dir=model_dir,
        variant=variant,
        adapter_dir=adapter_dir,
        router=router_obj,
        extra={"merged_weights": merged} if adapter_dir is not None else {},
    )


load = load_qwen3_asr  # the family's role name (asrquant.families)
