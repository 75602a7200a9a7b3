"""whisper.cpp's model file (ggml) from the one quantized representation.

    asrquant export whisper-base --out runs/base-ggml --format ggml                     float16
    asrquant export whisper-base --out runs/base-q4 --format ggml --recipe ggml-q4_0-gptq --calib CALIB
    asrquant export whisper-base --out runs/base-rtn --format ggml --ggml-type q4_0     ggml's own rounding
    asrquant export whisper-base --out runs/base-f32 --format ggml --ggml-type f32      float32 (a diagnostic)

The file: the magic, the int32 hyper-parameters and file type, the mel filters (float32), the
token table (length-prefixed bytes), then each tensor: n_dims, name length, ggml type, its
dimensions innermost first, the name, the data. whisper.cpp gives every Linear and the token table
the file's type, the convolution kernels float16 (float32 in a float32 file) and everything else
float32.

``--ggml-type f32`` writes every tensor float32 (file type 0): whisper.cpp then multiplies by
float32 weights in float32, where with float16 weights its CPU matrix product rounds the
activations to float16 too. A diagnostic and for exactness, twice the float16 file. whisper.cpp
1.8.5 loads it, but its CPU backend stops at the first convolution (``ggml_conv_1d`` asks im2col
for float16 whatever the kernel's type: ``GGML_ASSERT(src0->type == GGML_TYPE_F16)``, whisper.cpp
issue #2557), and it keeps its KV caches in float16 whatever the file's type (its ``itype`` is
never set); benchmarks/whisper-cpp/README.md says what a build that runs it changes.

Block types (32 weights of a row per block, a float16 scale ``d``; little-endian):

    q4_0  d, 16 bytes of nibbles               w = (q - 8) * d     byte j: element j low, j + 16 high
    q5_0  d, uint32 of fifth bits, 16 bytes    w = (q - 16) * d    bit i of the uint32: element i's
    q8_0  d, 32 int8                           w = q * d
    q4_1  d, m (float16), 16 bytes             w = q * d + m
    q5_1  d, m, uint32 of fifth bits, 16 bytes w = q * d + m

Ours map onto them without changing a number: a symmetric b-bit scheme's codes are ggml's q (our
implicit zero point 2^(b-1) is its offset; q8_0 stores code - 128), our float16 scale its d; an
asymmetric scheme's ``(code - z) * s`` is ``code * s + m`` with ``m = -z * s`` when that product
is a float16 number (then both sides are exact in float32), and is refused where it is not.

``rtn_rows`` is ggml's own round to nearest (its ``quantize_row_*_ref``, what whisper.cpp's
``quantize`` tool writes from a float16 file), for comparison.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor, nn

from ..artifact import atomic_dir, write_manifest
from ..errors import AsrQuantError
from ..quant.qtensor import QuantizedWeight
from .hf_layout import FamilyInfo, manifest_fields, refuse_input_scale

FORMAT = "ggml"
MODEL_FILE = "ggml-model.bin"
MAGIC = 0x67676D6C  # "ggml"
QNT_VERSION, QNT_VERSION_FACTOR = 2, 1000  # a quantized file's type is ftype + 2 * 1000
QK = 32  # weights per block, every type here


@dataclass(frozen=True)
class GgmlType:
    name: str
    type_id: int  # ggml_type
    ftype: int  # ggml_ftype of a file whose Linears have this type
    bits: int
    symmetric: bool
    dtype: np.dtype  # one block (or one element for the float types)


def _block(*fields) -> np.dtype:
    return np.dtype(list(fields))  # packed: no alignment padding, as ggml's structs


TYPES = {
    "f32": GgmlType("f32", 0, 0, 32, True, np.dtype("<f4")),
    "f16": GgmlType("f16", 1, 1, 16, True, np.dtype("<f2")),
    "q4_0": GgmlType("q4_0", 2, 2, 4, True, _block(("d", "<f2"), ("qs", "u1", 16))),
    "q4_1": GgmlType("q4_1", 3, 3, 4, False, _block(("d", "<f2"), ("m", "<f2"), ("qs", "u1", 16))),
    "q5_0": GgmlType("q5_0", 6, 8, 5, True, _block(("d", "<f2"), ("qh", "<u4"), ("qs", "u1", 16))),
    "q5_1": GgmlType("q5_1", 7, 9, 5, False, _block(("d", "<f2"), ("m", "<f2"), ("qh", "<u4"), ("qs", "u1", 16))),
    "q8_0": GgmlType("q8_0", 8, 7, 8, True, _block(("d", "<f2"), ("qs", "i1", 32))),
}
BLOCK_TYPES = ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0")
FLOAT_TYPES = ("f32", "f16")
BY_ID = {t.type_id: t for t in TYPES.values()}


def block_type_of(name: str, qw: QuantizedWeight) -> GgmlType:
    """The ggml block type holding ``qw``'s numbers exactly, or a refusal that says why."""
    s = qw.scheme
    reason = None
    if s.format != "int":
        reason = f"{s.format} has no ggml block type"
    elif s.group_size != QK or s.scale_dtype != "float16":
        reason = "ggml's blocks are 32 weights of a row with a float16 scale"
    elif s.bits not in (4, 5, 8) or (s.bits == 8 and not s.symmetric):
        reason = "ggml's blocks hold 4 or 5 bits (symmetric or with an offset) or 8 bits symmetric"
    if reason:
        raise AsrQuantError(f"{name}: {s.name} cannot be written as a ggml block type: {reason} "
                            "(use a ggml-* recipe: int4/int5 symmetric or int8 symmetric, group_size 32, "
                            "scale_dtype float16)")
    key = f"q{s.bits}_{0 if s.symmetric else 1}"
    return TYPES[key]


# --- blocks: codes, scales and offsets <-> bytes -----------------------------------------------------


def pack_blocks(t: GgmlType, q: np.ndarray, d: np.ndarray, m: np.ndarray | None = None) -> np.ndarray:
    """Codes uint8 [rows, n] (q8_0: int8), scales and offsets float16 [rows, n / 32] -> blocks
    [rows, n / 32] of ``t.dtype``."""
    rows, n = q.shape
    q = q.reshape(rows, n // QK, QK)
    out = np.zeros((rows, n // QK), dtype=t.dtype)
    out["d"] = d
    if m is not None:
        out["m"] = m
    if t.bits == 8:
        out["qs"] = q.view(np.int8)
        return out
    low = (q & 0x0F).astype(np.uint8)
    out["qs"] = low[..., :16] | (low[..., 16:] << 4)
    if t.bits == 5:
        fifth = ((q >> 4) & 1).astype(np.uint32)
        out["qh"] = (fifth << np.arange(QK, dtype=np.uint32)).sum(-1, dtype=np.uint32)
    return out


def _ours_to_blocks(name: str, t: GgmlType, qw: QuantizedWeight) -> np.ndarray:
    codes = qw.codes.cpu().numpy()
    scales = qw.scales.cpu().numpy().astype(np.float32)
    d = scales.astype(np.float16)
    if not np.array_equal(d.astype(np.float32), scales):
        raise AsrQuantError(f"{name}: a scale is not a float16 number")
    if t.bits == 8:
        return pack_blocks(t, (codes.astype(np.int16) - 128).astype(np.int8).view(np.uint8), d)
    if t.symmetric:
        return pack_blocks(t, codes, d)
    offset = -(qw.zero_points.cpu().numpy().astype(np.float32) * scales)  # exact in float32
    m = offset.astype(np.float16)
    bad = m.astype(np.float32) != offset
    if bad.any():
        raise AsrQuantError(
            f"{name}: {qw.scheme.name} cannot be written as {t.name} exactly: {int(bad.sum())} of {bad.size} "
            f"groups have an offset -zero_point * scale that is not a float16 number (ggml stores the offset "
            f"m = -z * s in float16). Use a symmetric recipe (q{t.bits}_0: ggml-q{t.bits}_0-gptq)."
        )
    return pack_blocks(t, codes, d, m)


# --- ggml's own round to nearest (quantize_row_*_ref) ------------------------------------------------


def _ggml_half(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16)  # GGML_FP32_TO_FP16: round to nearest even, as numpy


def _reciprocal(d: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(d != 0, np.float32(1.0) / d, np.float32(0.0)).astype(np.float32)


def rtn_rows(t: GgmlType, x: np.ndarray) -> np.ndarray:
    """ggml's reference quantization of float32 rows [rows, n] into blocks of type ``t``, step
    for step in float32 as its C code (the first largest magnitude of a block sets a symmetric
    scale's sign; codes truncated after adding 0.5)."""
    rows, n = x.shape
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(rows, n // QK, QK)
    if t.name == "q8_0":
        amax = np.abs(x).max(-1)
        d = (amax / np.float32(127)).astype(np.float32)
        v = (x * _reciprocal(d)[..., None]).astype(np.float64)
        q = (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int8)  # roundf: halves away from zero
        return pack_blocks(t, q.view(np.uint8).reshape(rows, n), _ggml_half(d))
    if t.symmetric:  # q4_0, q5_0
        half = 1 << (t.bits - 1)
        first_max = np.take_along_axis(x, np.abs(x).argmax(-1)[..., None], -1)[..., 0]
        d = (first_max / np.float32(-half)).astype(np.float32)
        v = x * _reciprocal(d)[..., None] + np.float32(half + 0.5)
        q = np.minimum(2 * half - 1, np.trunc(v).astype(np.int32))
        return pack_blocks(t, q.astype(np.uint8).reshape(rows, n), _ggml_half(d))
    lo, hi = x.min(-1), x.max(-1)
    d = ((hi - lo) / np.float32((1 << t.bits) - 1)).astype(np.float32)
    v = (x - lo[..., None]) * _reciprocal(d)[..., None] + np.float32(0.5)
    q = np.trunc(v).astype(np.int32)
    if t.bits == 4:
        q = np.minimum(15, q)
    return pack_blocks(t, q.astype(np.uint8).reshape(rows, n), _ggml_half(d), _ggml_half(lo))


# --- the file -----------------------------------------------------------------------------------------


def _record(name: str, t: GgmlType, shape: tuple[int, ...], data: bytes) -> bytes:
    encoded = name.encode("utf-8")
    dims = tuple(reversed(shape))  # ggml lists the innermost (contiguous) dimension first
    return struct.pack(f"<iii{len(dims)}i", len(dims), len(encoded), t.type_id, *dims) + encoded + data


def _header(layout, ftype: int) -> bytes:
    filters = np.ascontiguousarray(layout.mel_filters, dtype="<f4")
    parts = [struct.pack("<i", MAGIC), struct.pack(f"<{len(layout.hparams)}i", *layout.hparams),
             struct.pack("<i", ftype), struct.pack("<ii", *filters.shape), filters.tobytes(),
             struct.pack("<i", len(layout.vocab))]
    parts += [struct.pack("<I", len(tok)) + tok for tok in layout.vocab]
    return b"".join(parts)


def _quantized_modules(model: nn.Module, qweights: dict[str, QuantizedWeight]) -> dict[str, QuantizedWeight]:
    """The quantized Linears, and a quantized token table (whisper.cpp gives it the file's type too)."""
    tables = {n: m.qweight for n, m in model.named_modules()
              if isinstance(getattr(m, "qweight", None), QuantizedWeight) and n not in qweights}
    return {**qweights, **tables}


def write_ggml(model: nn.Module, family: FamilyInfo, qweights: dict[str, QuantizedWeight], out_dir: str | Path,
               recipe=None, ggml_type: str | None = None) -> Path:
    """Write whisper.cpp's model file of ``model`` to ``out_dir`` (atomically, with a manifest).

    A quantized model is written in the one block type its schemes map onto, every Linear and the
    token table quantized alike (whisper.cpp's loader holds them in one type). A float model is
    written float16, or with ``ggml_type`` rounded to nearest by ggml's own rows (a block type) or
    in that float type (``f32``: every tensor float32; ``f16``: the default).
    """
    layout = family.ggml
    if layout is None:
        raise AsrQuantError(f"--format ggml: the {family.family} family has no whisper.cpp model file")
    quantized = {layout.module(n): (n, qw) for n, qw in _quantized_modules(model, qweights).items()}
    tensors = layout.tensors(model)
    main = [k for k, (_, storage) in tensors.items() if storage == "main"]
    if quantized:
        if ggml_type is not None:
            raise AsrQuantError("--ggml-type rounds a float model by ggml's own rows; this model is already "
                                "quantized by its recipe (its block type follows from the recipe's scheme)")
        types = {}
        for file_name, (n, qw) in quantized.items():
            refuse_input_scale(n, qw, FORMAT)
            types.setdefault(block_type_of(n, qw).name, []).append(n)
        if len(types) > 1:
            raise AsrQuantError("whisper.cpp holds every Linear and the token table in one type; this recipe gives "
                                + "; ".join(f"{k}: {v[0]} ..." for k, v in types.items()))
        kind = TYPES[next(iter(types))]
        left_float = [k for k in main if k not in quantized]
        if left_float:
            raise AsrQuantError(
                f"whisper.cpp holds every Linear and the token table in the file's type ({kind.name}); "
                f"{len(left_float)} are float ({', '.join(left_float[:3])}{' ...' if len(left_float) > 3 else ''}): "
                "quantize them too (the ggml-* recipes quantize every Linear and the token table)"
            )
        ftype = kind.ftype + QNT_VERSION * QNT_VERSION_FACTOR
    elif ggml_type in FLOAT_TYPES:
        kind = TYPES[ggml_type]
        ftype = kind.ftype
    elif ggml_type is not None:
        if ggml_type not in BLOCK_TYPES:
            raise AsrQuantError(f"--ggml-type {ggml_type!r}: expected one of {', '.join(BLOCK_TYPES + FLOAT_TYPES)}")
        kind = TYPES[ggml_type]
        ftype = kind.ftype + QNT_VERSION * QNT_VERSION_FACTOR
    else:
        kind, ftype = TYPES["f16"], TYPES["f16"].ftype

    def record(name: str, tensor: Tensor, storage: str) -> bytes:
        shape = tuple(tensor.shape)
        if storage == "main" and name in quantized:
            n, qw = quantized[name]
            return _record(name, kind, shape, _ours_to_blocks(n, kind, qw).tobytes())
        values = tensor.detach().float().cpu().numpy()
        if storage == "main" and kind.name in BLOCK_TYPES:
            # whisper.cpp's quantize tool rounds what its float16 file holds
            rows = values.astype(np.float16).astype(np.float32)
            return _record(name, kind, shape, rtn_rows(kind, rows).tobytes())
        # whisper.cpp's loader wants a float32 file's convolution kernels float32 too (its conv type)
        t = TYPES["f32"] if storage == "float" or kind.name == "f32" else TYPES["f16"]
        return _record(name, t, shape, np.ascontiguousarray(values, dtype=t.dtype).tobytes())

    names = {n: layout.module(n) for n in qweights}
    fields = manifest_fields(FORMAT, family, qweights, recipe, names)
    fields.update(ggml_type=kind.name, ggml_file=MODEL_FILE,
                  rounding="recipe" if quantized else ("ggml-rtn" if kind.name in BLOCK_TYPES
                                                       else {"f32": "float32", "f16": "float16"}[kind.name]),
                  schemes={f: qw.scheme.name for f, (_, qw) in quantized.items()})
    with atomic_dir(out_dir) as tmp:
        with open(tmp / MODEL_FILE, "wb") as f:
            f.write(_header(layout, ftype))
            for name, (tensor, storage) in tensors.items():
                f.write(record(name, tensor, storage))
        write_manifest(tmp, **fields)
    return Path(out_dir)
