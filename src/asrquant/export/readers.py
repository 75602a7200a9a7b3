"""Readers of the exported formats, for round trips: what a runtime would compute from the files.

    read_compressed_tensors  through compressed-tensors' own decompressors (as the library's
                             ``decompress_model`` reads them; FP4 optionally in float32; int
                             always in float32, from float32 copies of the stored scales)
    read_nvfp4               from the published definition of Model Optimizer's NVFP4 checkpoint:
                             ``e2m1(nibble) * (float32(weight_scale e4m3) * weight_scale_2)``,
                             the low nibble holding the even element; input multiplied by
                             ``pre_quant_scale`` when present
    read_mlx                 from MLX's published affine definition: codes packed little-endian
                             into uint32 words along the row, ``w = scales * q + biases``, in
                             float32
    read_mlx_with_mlx        through ``mlx.core.dequantize`` itself
    read_ggml                whisper.cpp's model file, from ggml's block definitions (its
                             ``dequantize_row_*``): ``(q - 8) * d`` (q4_0), ``(q - 16) * d`` (q5_0),
                             ``q * d`` (q8_0), ``q * d + m`` (q4_1, q5_1), in float32

Each returns a :class:`ReadBack` keyed by the names in the artifact. Readers verify the
artifact's manifest first and raise :class:`ArtifactError` naming the file when it is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..artifact import verify
from ..errors import ArtifactError
from .hf_layout import WEIGHTS_FILE

# E2M1 values by code, from the format's definition (sign bit 3; bias 1; one mantissa bit).
E2M1 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)


@dataclass
class ReadBack:
    weights: dict[str, Tensor]  # quantized module (artifact name) -> the weight the runtime computes
    input_scales: dict[str, Tensor] = field(default_factory=dict)  # module -> m, the runtime computes x * m
    tensors: dict[str, Tensor] = field(default_factory=dict)  # every other tensor, as stored
    config: dict = field(default_factory=dict)


def _json(path: Path) -> dict:
    if not path.is_file():
        raise ArtifactError(f"{path}: missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path}: not valid JSON ({e})") from None


def _tensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise ArtifactError(f"{path}: not a readable safetensors file ({e})") from None


def _take(tensors: dict, key: str, where: Path) -> Tensor:
    if key not in tensors:
        raise ArtifactError(f"{where}: tensor {key!r} is missing")
    return tensors.pop(key)


# --- compressed-tensors ----------------------------------------------------------------------------


def read_compressed_tensors(directory: str | Path, fp4_float32: bool = False) -> ReadBack:
    """``fp4_float32``: carry out the library's FP4 decompression in float32 (its ``decompress``
    casts NVFP4 / MXFP4 weights to bfloat16)."""
    from compressed_tensors.compressors import BaseCompressor
    from compressed_tensors.quantization import QuantizationScheme

    directory = Path(directory)
    verify(directory)
    config = _json(directory / "config.json")
    qc = config.get("quantization_config")
    if not isinstance(qc, dict) or qc.get("quant_method") != "compressed-tensors":
        raise ArtifactError(f"{directory / 'config.json'}: no compressed-tensors quantization_config")
    where = directory / WEIGHTS_FILE
    tensors = _tensors(where)
    weights = {}
    for group in qc.get("config_groups", {}).values():
        scheme = QuantizationScheme.model_validate(group)
        compressor = BaseCompressor.get_value_from_registry(scheme.format or qc["format"])
        params = compressor.compression_param_names(scheme)
        for target in scheme.targets:
            local = {p: _take(tensors, f"{target}.{p}", where) for p in params}
            if scheme.weights.type == "int":
                # The library computes in the scales' dtype: float16 scales (exact values of a
                # float16-scale scheme) would round every weight to float16; widened, it is ours.
                local["weight_scale"] = local["weight_scale"].float()
            if fp4_float32 and scheme.weights.type == "float":
                weights[target] = _fp4_float32(compressor, local, scheme)
            else:
                weights[target] = compressor.decompress(local, scheme)["weight"]
    return ReadBack(weights, {}, tensors, config)


def _fp4_float32(compressor, local: dict, scheme) -> Tensor:
    """The steps of the library's FP4 ``decompress`` (unpack, scale, dequantize), in float32."""
    from compressed_tensors.compressors.nvfp4.helpers import unpack_fp4_from_uint8
    from compressed_tensors.quantization.lifecycle.forward import dequantize

    packed = local["weight_packed"]
    values = unpack_fp4_from_uint8(packed, packed.shape[0], packed.shape[1] * 2, dtype=torch.float32)
    scale = compressor._decompress_scale(local["weight_scale"], torch.float32)
    return dequantize(values, scale, args=scheme.weights, dtype=torch.float32,
                      global_scale=local.get("weight_global_scale"))


# --- NVFP4, Model Optimizer's unified Hugging Face checkpoint ----------------------------------------


def nvfp4_weight(packed: Tensor, block_scale: Tensor, tensor_scale: Tensor, block: int = 16) -> Tensor:
    """float32 [out, 2 * packed cols] by the definition (E4M3 block scales times the FP32 one)."""
    nibbles = torch.stack([packed & 0xF, packed >> 4], dim=-1).reshape(packed.shape[0], -1)
    values = torch.tensor(E2M1, dtype=torch.float32)[nibbles.long()]
    scale = block_scale.float() * tensor_scale.float()
    return (values.reshape(values.shape[0], -1, block) * scale[..., None]).reshape(values.shape)


def read_nvfp4(directory: str | Path) -> ReadBack:
    directory = Path(directory)
    verify(directory)
    hf_quant = _json(directory / "hf_quant_config.json")
    algo = hf_quant.get("quantization", {}).get("quant_algo")
    if not algo:
        raise ArtifactError(f"{directory / 'hf_quant_config.json'}: no quantization.quant_algo")
    where = directory / WEIGHTS_FILE
    tensors = _tensors(where)
    modules = [k[: -len(".weight_scale_2")] for k in tensors if k.endswith(".weight_scale_2")]
    weights, multipliers = {}, {}
    for m in modules:
        packed = _take(tensors, f"{m}.weight", where)
        block_scale = _take(tensors, f"{m}.weight_scale", where)
        if packed.dtype != torch.uint8 or block_scale.dtype != torch.float8_e4m3fn:
            raise ArtifactError(f"{where}: {m}: weight must be uint8 and weight_scale float8_e4m3fn, "
                                f"not {packed.dtype} and {block_scale.dtype}")
        weights[m] = nvfp4_weight(packed, block_scale, _take(tensors, f"{m}.weight_scale_2", where))
        if f"{m}.pre_quant_scale" in tensors:
            multipliers[m] = tensors.pop(f"{m}.pre_quant_scale").float()
    return ReadBack(weights, multipliers, tensors, _json(directory / "config.json"))


# --- MLX --------------------------------------------------------------------------------------------


def mlx_layer_params(quantization: dict, module: str) -> tuple[int, int, str]:
    """(group_size, bits, mode) of ``module``: its own entry in the config's quantization block,
    else the block's defaults (how mlx-audio and mlx-lm read a mixed model). Entries are keyed by
    the MLX module path, which for Qwen3-ASR is the file's name less ``thinker.`` (mlx-audio's
    sanitize strips it)."""
    own = quantization.get(module.removeprefix("thinker."))
    src = own if isinstance(own, dict) else quantization
    return int(src["group_size"]), int(src["bits"]), str(src.get("mode", "affine"))


def unpack_mlx(words: np.ndarray, bits: int, n: int) -> np.ndarray:
    """uint32 [out, W] -> uint8 codes [out, n]: element i at bits [i*bits, (i+1)*bits) of the row's
    little-endian bit stream (words are little-endian 32-bit integers)."""
    stream = np.unpackbits(words.astype("<u4").view(np.uint8), axis=-1, bitorder="little")
    stream = stream[:, : n * bits].reshape(words.shape[0], n, bits)
    weights = (1 << np.arange(bits, dtype=np.uint32)).astype(np.uint32)
    return (stream.astype(np.uint32) * weights).sum(-1).astype(np.uint8)


def _mlx_files(directory: Path) -> tuple[dict, dict]:
    verify(directory)
    config = _json(directory / "config.json")
    quantization = config.get("quantization")
    if not isinstance(quantization, dict):
        raise ArtifactError(f"{directory / 'config.json'}: no 'quantization' block")
    return config, quantization


def _mlx_arrays(directory: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise ArtifactError(f"{directory}: no .safetensors file")
    arrays = {}
    for f in files:
        try:
            arrays.update(load_file(str(f)))
        except (SafetensorError, OSError) as e:
            raise ArtifactError(f"{f}: not a readable safetensors file ({e})") from None
    return arrays


def read_mlx(directory: str | Path) -> ReadBack:
    directory = Path(directory)
    config, quantization = _mlx_files(directory)
    arrays = _mlx_arrays(directory)
    weights = {}
    for m in [k[: -len(".scales")] for k in arrays if k.endswith(".scales")]:
        group, bits, mode = mlx_layer_params(quantization, m)
        words = arrays.pop(f"{m}.weight")
        n = words.shape[1] * 32 // bits
        codes = unpack_mlx(words, bits, n).reshape(words.shape[0], -1, group)
        if mode == "mxfp4":  # E2M1 codes, E8M0 scales: value * 2^(scale - 127)
            scales = np.ldexp(np.float32(1.0), arrays.pop(f"{m}.scales").astype(np.int32) - 127).astype(np.float32)
            w = np.array(E2M1, dtype=np.float32)[codes] * scales[..., None]
        else:
            scales = arrays.pop(f"{m}.scales").astype(np.float32)
            biases = arrays.pop(f"{m}.biases").astype(np.float32)
            w = scales[..., None] * codes.astype(np.float32) + biases[..., None]  # float32, the definition's order
        weights[m] = torch.from_numpy(np.ascontiguousarray(w.reshape(words.shape[0], n)))
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    return ReadBack(weights, {}, tensors, config)


def read_mlx_with_mlx(directory: str | Path) -> ReadBack:
    """The same through MLX: ``mx.load`` and ``mx.dequantize`` (float32 out of float32 scales)."""
    import mlx.core as mx

    directory = Path(directory)
    config, quantization = _mlx_files(directory)
    arrays = {}
    for f in sorted(directory.glob("*.safetensors")):
        arrays.update(mx.load(str(f)))
    weights = {}
    for m in [k[: -len(".scales")] for k in arrays if k.endswith(".scales")]:
        group, bits, mode = mlx_layer_params(quantization, m)
        w = mx.dequantize(arrays.pop(f"{m}.weight"), arrays.pop(f"{m}.scales"), arrays.pop(f"{m}.biases", None),
                          group_size=group, bits=bits, mode=mode)
        weights[m] = torch.from_numpy(np.array(w.astype(mx.float32)))
    tensors = {k: torch.from_numpy(np.array(v.astype(mx.float32))) for k, v in arrays.items()}
    return ReadBack(weights, {}, tensors, config)


# --- ggml (whisper.cpp) ----------------------------------------------------------------------------

# ggml_type -> (name, bytes per block of 32 (per element for float), header bytes: d [, m] [, qh])
GGML_TYPES = {0: ("f32", 4), 1: ("f16", 2), 2: ("q4_0", 18), 3: ("q4_1", 20), 6: ("q5_0", 22), 7: ("q5_1", 24),
              8: ("q8_0", 34)}


def ggml_dequantize(type_name: str, raw: bytes, rows: int, n: int) -> np.ndarray:
    """float32 [rows, n] from the bytes of ``rows`` rows of ``n`` weights of a ggml block type."""
    size = GGML_TYPES[next(k for k, v in GGML_TYPES.items() if v[0] == type_name)][1]
    b = np.frombuffer(raw, dtype=np.uint8).reshape(rows, n // 32, size)
    d = b[..., 0:2].copy().view("<f2")[..., 0].astype(np.float32)[..., None]
    if type_name == "q8_0":
        return (b[..., 2:].view(np.int8).astype(np.float32) * d).reshape(rows, n)
    has_m = type_name.endswith("_1")
    at = 4 if has_m else 2
    m = b[..., 2:4].copy().view("<f2")[..., 0].astype(np.float32)[..., None] if has_m else None
    if type_name.startswith("q5"):
        qh = b[..., at : at + 4].copy().view("<u4")[..., 0]
        high = ((qh[..., None] >> np.arange(32, dtype=np.uint32)) & 1).astype(np.int32) << 4
        at += 4
    else:
        high = 0
    qs = b[..., at : at + 16].astype(np.int32)
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1) + high  # byte j: element j, then element j + 16
    if has_m:
        w = q.astype(np.float32) * d + m
    else:
        w = (q - (16 if type_name == "q5_0" else 8)).astype(np.float32) * d
    return w.reshape(rows, n)


@dataclass
class GgmlFile:
    hparams: list[int]  # the int32 fields between the magic and the file type
    ftype: int  # as stored (quantized files: type + 1000 * quantization version)
    mel_filters: np.ndarray
    vocab: list[bytes]
    types: dict[str, str]  # tensor name -> its ggml type name
    tensors: dict[str, Tensor]  # float32 (block types dequantized), float16 as stored, in torch's order


def parse_ggml(path: str | Path) -> GgmlFile:
    """Every part of a whisper.cpp model file, checked as its loader checks it."""
    path = Path(path)
    data = path.read_bytes()
    at = 0

    def ints(count: int, fmt: str = "i") -> list[int]:
        nonlocal at
        if at + 4 * count > len(data):
            raise ArtifactError(f"{path}: ends early (byte {at})")
        out = list(np.frombuffer(data, dtype="<" + fmt + "4", count=count, offset=at))
        at += 4 * count
        return [int(x) for x in out]

    def take(count: int) -> bytes:
        nonlocal at
        if at + count > len(data):
            raise ArtifactError(f"{path}: ends early (byte {at})")
        at += count
        return data[at - count : at]

    if ints(1, "u") != [0x67676D6C]:
        raise ArtifactError(f"{path}: not a ggml model file (bad magic)")
    hparams, ftype = ints(10), ints(1)[0]
    n_mel, n_fft = ints(2)
    filters = np.frombuffer(take(4 * n_mel * n_fft), dtype="<f4").reshape(n_mel, n_fft).copy()
    vocab = [take(ints(1, "u")[0]) for _ in range(ints(1)[0])]
    types, tensors = {}, {}
    while at < len(data):
        n_dims, length, ttype = ints(3)
        if not 1 <= n_dims <= 4 or ttype not in GGML_TYPES:
            raise ArtifactError(f"{path}: bad tensor record at byte {at} (dims {n_dims}, type {ttype})")
        shape = tuple(reversed(ints(n_dims)))
        name = take(length).decode("utf-8")
        type_name, size = GGML_TYPES[ttype]
        count = int(np.prod(shape))
        raw = take(count * size if ttype in (0, 1) else count // 32 * size)
        if ttype in (0, 1):
            values = torch.from_numpy(np.frombuffer(raw, dtype="<f4" if ttype == 0 else "<f2").reshape(shape).copy())
        else:
            values = torch.from_numpy(ggml_dequantize(type_name, raw, count // shape[-1], shape[-1]).reshape(shape))
        types[name], tensors[name] = type_name, values
    return GgmlFile(hparams, ftype, filters, vocab, types, tensors)


def read_ggml(directory: str | Path) -> ReadBack:
    """An ``asrquant export --format ggml`` directory: the block-type tensors as ``weights`` (float32,
    by the file's names), every other tensor as stored, the header in ``config``."""
    directory = Path(directory)
    manifest = verify(directory)
    f = parse_ggml(directory / manifest.get("ggml_file", "ggml-model.bin"))
    weights = {k: v for k, v in f.tensors.items() if f.types[k] not in ("f32", "f16")}
    others = {k: v for k, v in f.tensors.items() if k not in weights}
    config = {"hparams": f.hparams, "ftype": f.ftype, "types": f.types, "n_vocab_file": len(f.vocab)}
    return ReadBack(weights, {}, others, config)
