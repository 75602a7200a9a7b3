"""Whisper's part of the saved quantized format (asrquant.quant.saved writes and reads the rest).

config.json holds the dimensions, the decoding settings (suppressed tokens, language tokens,
alignment heads) and how the encoder's positions are rounded; model.safetensors holds the
positions themselves only when they are not the sinusoid formula.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ...errors import ArtifactError
from ...quant.saved import compact, model_tensors, quantized_module
from .load import WhisperCheckpoint
from .model import SINUSOID_ROUNDINGS, Whisper, WhisperDims, sinusoid_rounding, sinusoids_rounded

POSITIONS = "encoder.positional_embedding"  # a buffer outside the state dict


def config(ckpt: WhisperCheckpoint) -> dict:
    positions = sinusoid_rounding(ckpt.model.encoder.positional_embedding)
    return {
        "dims": ckpt.dims.to_dict(), "encoder_positions": positions or "stored",
        "suppress_ids": ckpt.suppress_ids, "suppress_ids_begin": ckpt.suppress_ids_begin, "lang_ids": ckpt.lang_ids,
        "alignment_heads": [list(h) for h in ckpt.alignment_heads],
    }


def tensors(model: Whisper) -> dict[str, torch.Tensor]:
    out = model_tensors(model)
    # The encoder's positions: the formula's rounding when they are the formula (config.json
    # says which, see asrquant.models.whisper.model.SINUSOID_ROUNDINGS), else the table itself.
    if sinusoid_rounding(model.encoder.positional_embedding) is None:
        out[POSITIONS] = compact(model.encoder.positional_embedding)
    return out


def support_files(ckpt: WhisperCheckpoint) -> dict[str, Path]:
    return {"tokenizer.json": Path(ckpt.tokenizer_json)}


def _positions(path: Path, config: dict, dims: WhisperDims, stored: torch.Tensor | None) -> torch.Tensor:
    # Directories written before the rounding was recorded hold neither: loading them gave the
    # float32 sinusoids and still does, so the figures measured with them reproduce.
    how = config.get("encoder_positions", "float32")
    if how == "stored":
        if stored is None:
            raise ArtifactError(f"{path / 'model.safetensors'}: no {POSITIONS} (config.json says it is stored)")
        return stored.float().contiguous()
    if how not in SINUSOID_ROUNDINGS:
        raise ArtifactError(f"{path / 'config.json'}: encoder_positions is {how!r}, expected 'stored' or one of "
                            f"{', '.join(SINUSOID_ROUNDINGS)}")
    return sinusoids_rounded(dims.n_audio_ctx, dims.n_audio_state, how)


def build(path: Path, config: dict, schemes: dict, tensors: dict) -> WhisperCheckpoint:
    """The fake-quant checkpoint from a saved directory's config, schemes and tensors."""
    weights = path / "model.safetensors"
    dims = WhisperDims(**config["dims"])
    model = Whisper(dims)
    plain = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items() if ".qweight." not in k}
    positions = _positions(path, config, dims, plain.pop(POSITIONS, None))
    for name, meta in schemes.items():
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr,
                quantized_module(name, meta, tensors, plain.pop(f"{name}.bias", None), weights))
    missing, unexpected = model.load_state_dict(plain, strict=False)
    # QuantLinear / QuantEmbedding buffers (weight, bias, inv_input_scale) were set from the codes above.
    missing = [m for m in missing if not m.startswith(tuple(f"{n}." for n in schemes))]
    if missing or unexpected:
        raise ArtifactError(f"{weights}: tensors missing {missing[:3]} / unexpected {unexpected[:3]}")
    model.encoder.positional_embedding = positions
    model.eval().requires_grad_(False)
    return WhisperCheckpoint(
        model=model, dims=dims, tokenizer_json=path / "tokenizer.json", suppress_ids=config["suppress_ids"],
        suppress_ids_begin=config["suppress_ids_begin"], lang_ids=config["lang_ids"], source=str(path),
        source_sha256=config["source_sha256"], size_bytes=weights.stat().st_size, format=config["kind"],
        alignment_heads=[tuple(h) for h in config.get("alignment_heads", [])],
    )
