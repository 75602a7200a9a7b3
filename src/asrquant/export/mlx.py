"""MLX checkpoints: what ``mlx.nn.quantize`` makes of a Linear, for mlx-audio and mlx-examples'
whisper (``mlx_whisper``) to load.

Per quantized Linear (MLX's affine mode):

    weight  uint32 [out, in * bits / 32]  codes packed little-endian along the row
    scales  [out, in / group]              w = scales * q + biases
    biases  [out, in / group]              biases = -zero_point * scale (zero point 2^(bits-1) if symmetric)

and in config.json a ``quantization`` block: the most common ``group_size`` / ``bits`` as the
default and an entry per module path that differs (mlx-audio's and mlx-lm's per-layer form, as a
mixed 8-bit attention / 4-bit MLP recipe needs). MXFP4 layers use MLX's ``mxfp4`` mode (uint8
E8M0 scales, no biases), which is our representation as it is.

Groups: MLX takes 32, 64 or 128. A larger group (or one scale per channel) that is a multiple of
one of them is written as that many repeated scales, which changes no number; anything else is
refused, naming the layer. Bits: MLX's affine mode has 2, 3, 4, 5, 6 and 8.

When ``mx.dequantize`` gives back our weights bit for bit: MLX computes ``scale * q + bias`` in
the dtype of the stored scales, rounding ``scale * q`` and the bias before adding them, where we
round ``(q - zero) * scale`` once in float32. Scales are written as float32 arrays by default.
- A scheme with ``scale_dtype`` float16 or bfloat16 (scales of at most 11 or 8 significant bits,
  codes and zero points of at most 8) makes both products and their sum exact in float32:
  bit for bit. So does MXFP4 (power-of-two scales). The built-in ``mixed-8attn-4mlp`` recipe
  has float16 scales for this; the manifest's ``exact_through_mlx`` says whether it holds.
- A float32-scale scheme differs by at most the rounding of ``scale * 2^bits`` (a few units in
  the last place of the group's largest weight).
- ``scale_dtype="float16"`` storage (MLX's usual form, half the scale bytes) makes MLX
  dequantize in float16, rounding every weight to float16: ours for no scheme, though a float16
  scheme's scales are stored exactly. (Measured on random int4/int8 groups of 64 with float16
  scales: float32 storage equal, float16 storage off by up to 1.8e-4.)
The codes, scales and zero points written are ours exactly (scales rounded only by float16 storage
of a float32 or bfloat16 scheme).

Layout per family (each family's ``export_names`` supplies it as ``FamilyInfo.mlx``):
- Whisper: mlx_whisper's names (``blocks.N.mlp1``, conv weights as [out, kernel, in]), its
  config (the dimensions, ``model_type``), ``weights.safetensors``. mlx_whisper's own loader
  takes one group size and bit width only; a mixed model loads with mlx-audio.
- Qwen3-ASR: mlx-audio's Qwen3-ASR reads the Hugging Face names (``thinker.*``, which its
  ``sanitize`` maps) and quantizes the text model only, never ``audio_tower``: quantized
  audio-tower Linears are written as their dequantized float weights (the same numbers,
  uncompressed), listed in the manifest.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..artifact import atomic_dir, write_manifest
from ..errors import AsrQuantError
from ..quant.linear import linear_names
from ..quant.qtensor import QuantizedWeight, dequantize, pack_int
from ..quant.saved import compact
from .hf_layout import (
    FamilyInfo,
    manifest_fields,
    refuse_input_scale,
    require_quantized,
    write_config,
    write_support_files,
)

FORMAT = "mlx"
MLX_GROUPS = (128, 64, 32)
MLX_BITS = (2, 3, 4, 5, 6, 8)
SCALE_DTYPES = {"float32": np.float32, "float16": np.float16}


def mlx_group(name: str, qw: QuantizedWeight) -> int:
    """The MLX group size that writes ``qw``'s groups (a larger group as repeated scales)."""
    g = qw.group_len
    for m in MLX_GROUPS:
        if g % m == 0 and qw.in_features % m == 0:
            return m
    raise AsrQuantError(f"{name}: {qw.scheme.name} on {qw.in_features} inputs: MLX groups are "
                        f"{', '.join(map(str, MLX_GROUPS))} and this group of {g} is not a multiple of one")


def layer_params(name: str, qw: QuantizedWeight) -> dict:
    """This layer's entry in the quantization block."""
    s = qw.scheme
    refuse_input_scale(name, qw, FORMAT)
    if s.format == "mxfp4":
        return {"group_size": 32, "bits": 4, "mode": "mxfp4"}
    if s.format != "int":
        raise AsrQuantError(f"{name}: {s.name} has no MLX form here (MLX takes affine int and mxfp4)")
    if s.bits not in MLX_BITS:
        bits = ", ".join(map(str, MLX_BITS))
        raise AsrQuantError(f"{name}: {s.name}: MLX's affine mode has {bits} bits, not {s.bits}")
    return {"group_size": mlx_group(name, qw), "bits": s.bits, "mode": "affine"}


def exact_through_mlx(qw: QuantizedWeight, scale_dtype: str) -> bool:
    """Whether ``mx.dequantize`` of this layer as written is ``dequantize(qw)`` bit for bit (see above)."""
    if qw.scheme.format == "mxfp4":
        return True
    return scale_dtype == "float32" and qw.scheme.scale_dtype in ("float16", "bfloat16")


def _cast(a: np.ndarray, scale_dtype: str) -> np.ndarray:
    return a.astype(SCALE_DTYPES[scale_dtype])


def layer_arrays(qw: QuantizedWeight, params: dict, scale_dtype: str) -> dict[str, np.ndarray]:
    """weight (uint32 words), scales and biases of one Linear as MLX stores them."""
    words = pack_int(qw.codes.cpu().numpy(), params["bits"]).view("<u4")
    repeat = qw.group_len // params["group_size"]
    scales = np.repeat(qw.scales.cpu().numpy(), repeat, axis=1)[:, : qw.in_features // params["group_size"]]
    if params["mode"] == "mxfp4":
        return {"weight": words, "scales": np.ascontiguousarray(scales)}
    s = qw.scheme
    zero = (np.full_like(qw.scales.numpy(), 2.0 ** (s.bits - 1)) if s.symmetric
            else qw.zero_points.cpu().numpy().astype(np.float32))
    zero = np.repeat(zero, repeat, axis=1)[:, : scales.shape[1]]
    biases = -zero * scales  # float32, one rounding, as the definition above says
    return {"weight": words, "scales": _cast(np.ascontiguousarray(scales, np.float32), scale_dtype),
            "biases": _cast(np.ascontiguousarray(biases, np.float32), scale_dtype)}


def quantization_block(per_layer: dict[str, dict]) -> dict:
    """The default (most common) parameters and an entry for every layer that differs."""
    key = lambda p: (p["group_size"], p["bits"], p["mode"])  # noqa: E731
    default = dict(zip(("group_size", "bits", "mode"), Counter(map(key, per_layer.values())).most_common(1)[0][0]))
    block = dict(default)
    block.update({path: p for path, p in per_layer.items() if key(p) != key(default)})
    return block


def float_arrays(model: nn.Module, family: FamilyInfo, qweights: dict) -> dict[str, np.ndarray]:
    """Every tensor that is not a quantized Linear's, under the file's names, as numpy."""
    return {k: _numpy(v) for k, v in family.mlx.float_arrays(model, qweights).items()}


def _numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy())


def write_mlx(model: nn.Module, family: FamilyInfo, qweights: dict[str, QuantizedWeight], out_dir: str | Path,
              recipe=None, scale_dtype: str = "float32") -> Path:
    """Write the MLX checkpoint of ``model`` to ``out_dir`` (atomically).

    ``scale_dtype``: the storage of scales and biases. float32 keeps our scales as they are and,
    for a float16/bfloat16-scale scheme, our weights through MLX bit for bit; float16 is what MLX
    models usually ship (MLX then dequantizes in float16: no longer our weights bit for bit).
    """
    from safetensors.numpy import save_file

    require_quantized(qweights, FORMAT)
    if scale_dtype not in SCALE_DTYPES:
        raise AsrQuantError(f"scale dtype {scale_dtype!r}: expected one of {', '.join(SCALE_DTYPES)}")
    arrays = float_arrays(model, family, qweights)
    per_layer, kept_float, exact = {}, [], True
    for name, qw in qweights.items():
        if family.mlx.keeps_float(name):
            refuse_input_scale(name, qw, FORMAT)
            arrays[f"{family.hf_module(name)}.weight"] = _numpy(compact(dequantize(qw)))
            kept_float.append(name)
            continue
        params = layer_params(name, qw)
        per_layer[family.mlx.module(name)] = params
        exact = exact and exact_through_mlx(qw, scale_dtype)
        for k, v in layer_arrays(qw, params, scale_dtype).items():
            arrays[f"{family.mlx.tensor_prefix(name)}.{k}"] = v
    if not per_layer:
        raise AsrQuantError("no quantized Linear is left for MLX (mlx-audio's Qwen3-ASR quantizes the text model only)")
    names = {n: family.mlx.module(n) for n in linear_names(model)}
    fields = manifest_fields(FORMAT, family, qweights, recipe, names)
    fields.update(scale_dtype=scale_dtype, exact_through_mlx=exact, float_dequantized=kept_float)
    with atomic_dir(out_dir) as tmp:
        save_file(arrays, str(tmp / family.mlx.weights_file), metadata={"format": "mlx"})
        write_config(tmp, family.mlx.config(model, quantization_block(per_layer)))
        write_support_files(family, tmp)
        write_manifest(tmp, **fields)
    return Path(out_dir)
