"""The one quantized-weight representation, and its dequantization, defined once.

A Linear weight W [out, in] is stored as

    codes        uint8 [out, in], one code per element, unpacked
    scales       [out, G] per group of ``group_size`` input elements (G = ceil(in / group)):
                   int   : float32 scale
                   nvfp4 : uint8 E4M3 bit patterns (scale in units of ``global_scale``)
                   mxfp4 : uint8 E8M0 bit patterns (scale 2^(bits - 127))
    zero_points  uint8 [out, G] for asymmetric int, else None
    global_scale float32 scalar tensor, nvfp4 only (a multiplier; NVIDIA ModelOpt's
                   ``weight_scale_2``; compressed-tensors' ``weight_global_scale`` is its reciprocal)
    input_scale  float32 [in] or None: the AWQ per-input-channel scale s that the weight was
                   multiplied by before quantization and that was NOT folded into the previous
                   op. A reader computes ``y = (x / s) @ dequantize(qw).T + b``.

Integer codes are unsigned in [0, 2^b - 1] for both symmetries:
    asymmetric: w = (code - zero_point) * scale
    symmetric : w = (code - 2^(b-1)) * scale      (implicit zero point 2^(b-1))
The symmetric mapping is ONNX MatMulNBits' default zero point (8 for 4 bits); compressed-tensors'
signed int value is ``code - 2^(b-1)``; MLX's affine form is ``code * scale + bias`` with
``bias = -zero * scale``.

FP4 codes are E2M1 bit patterns (sign bit 3): w = e2m1(code) * scale_value, where
    nvfp4: scale_value = float32(e4m3(scales) * global_scale)
    mxfp4: scale_value = e8m0(scales)

All arithmetic of :func:`dequantize` is float32, in the order written above; that order is the
definition every runtime is compared against.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from .numerics import e2m1_values, e4m3_decode, e8m0_decode
from .scheme import QuantScheme


@dataclass
class QuantizedWeight:
    codes: Tensor
    scales: Tensor
    zero_points: Tensor | None
    scheme: QuantScheme
    shape: tuple[int, int]
    global_scale: Tensor | None = None
    input_scale: Tensor | None = None
    # Free-form notes of the algorithm that made it (damping used, AWQ ratio, ...); not data.
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)
        out, inp = self.shape
        s = self.scheme
        g = s.n_groups(inp)
        _check(self.codes, torch.uint8, (out, inp), "codes")
        scale_dtype = torch.float32 if s.format == "int" else torch.uint8
        _check(self.scales, scale_dtype, (out, g), "scales")
        if s.format == "int" and not s.symmetric:
            if self.zero_points is None:
                raise ValueError("asymmetric int needs zero_points")
            _check(self.zero_points, torch.uint8, (out, g), "zero_points")
        elif self.zero_points is not None:
            raise ValueError(f"{s.name} has no zero points")
        if s.format == "nvfp4":
            if self.global_scale is None:
                raise ValueError("nvfp4 needs a global_scale")
            _check(self.global_scale, torch.float32, (), "global_scale")
        elif self.global_scale is not None:
            raise ValueError(f"{s.name} has no global_scale")
        if self.input_scale is not None:
            _check(self.input_scale, torch.float32, (inp,), "input_scale")

    @property
    def out_features(self) -> int:
        return self.shape[0]

    @property
    def in_features(self) -> int:
        return self.shape[1]

    @property
    def group_len(self) -> int:
        return self.scheme.group_len(self.in_features)

    def to(self, device) -> "QuantizedWeight":
        mv = lambda t: None if t is None else t.to(device)  # noqa: E731
        return replace(
            self,
            codes=mv(self.codes),
            scales=mv(self.scales),
            zero_points=mv(self.zero_points),
            global_scale=mv(self.global_scale),
            input_scale=mv(self.input_scale),
        )

    def tensors(self) -> dict[str, Tensor]:
        """The arrays by name (codes, scales, zero_points, global_scale, input_scale), absent ones left out."""
        d = {"codes": self.codes, "scales": self.scales, "zero_points": self.zero_points,
             "global_scale": self.global_scale, "input_scale": self.input_scale}
        return {k: v for k, v in d.items() if v is not None}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], scheme: QuantScheme) -> "QuantizedWeight":
        codes = tensors["codes"]
        return cls(
            codes=codes,
            scales=tensors["scales"],
            zero_points=tensors.get("zero_points"),
            scheme=scheme,
            shape=tuple(codes.shape),
            global_scale=tensors.get("global_scale"),
            input_scale=tensors.get("input_scale"),
        )


def _check(t: Tensor, dtype: torch.dtype, shape: tuple, what: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, not {type(t).__name__}")
    if t.dtype != dtype or tuple(t.shape) != tuple(shape):
        raise ValueError(f"{what}: expected {dtype} {list(shape)}, got {t.dtype} {list(t.shape)}")


# --- dequantization, the definition -----------------------------------------------------------


def scale_values(scheme: QuantScheme, scales: Tensor, global_scale: Tensor | None = None) -> Tensor:
    """float32 [out, G]: the multiplier of each group."""
    if scheme.format == "int":
        return scales.float()
    if scheme.format == "nvfp4":
        return e4m3_decode(scales) * global_scale.to(scales.device).float()
    return e8m0_decode(scales)


def zero_offsets(scheme: QuantScheme, zero_points: Tensor | None, like: Tensor) -> Tensor | float:
    """What is subtracted from a code's value before scaling: zero point, 2^(b-1), or 0."""
    if scheme.format != "int":
        return 0.0
    if scheme.symmetric:
        return float(2 ** (scheme.bits - 1))
    return zero_points.to(like.device).float()


def code_values(codes: Tensor, scheme: QuantScheme) -> Tensor:
    """float32 value of each code: the integer itself, or the E2M1 number."""
    if scheme.format == "int":
        return codes.float()
    return e2m1_values(codes.device)[codes.long()]


def expand_groups(t: Tensor | float, group: int, n: int) -> Tensor | float:
    """[out, G] -> [out, n] repeating each group's entry ``group`` times (the last group may be short)."""
    if not isinstance(t, Tensor):
        return t
    return t.repeat_interleave(group, dim=1)[:, :n]


def dequantize(qw: QuantizedWeight) -> Tensor:
    """float32 [out, in] weight the codes stand for (without the input scale; see the module doc)."""
    s, n, g = qw.scheme, qw.in_features, qw.group_len
    scale = scale_values(s, qw.scales, qw.global_scale)
    zero = zero_offsets(s, qw.zero_points, scale)
    return (code_values(qw.codes, s) - expand_groups(zero, g, n)) * expand_groups(scale, g, n)


def effective_weight(qw: QuantizedWeight) -> Tensor:
    """The weight as seen from the original input, ``dequantize(qw) / input_scale`` (for error reports)."""
    w = dequantize(qw)
    if qw.input_scale is not None:
        w = w / qw.input_scale.to(w.device)[None, :]
    return w


# --- packing helpers for exporters -------------------------------------------------------------


def pack_int(codes, bits: int):
    """Pack unsigned ``bits``-bit codes along the last axis into uint8, little-endian.

    Code i occupies bits [i*bits, (i+1)*bits) of the row's little-endian bit stream; for 4 bits
    that is two codes per byte, the first in the low nibble (ONNX MatMulNBits, MLX, GGML order);
    for 2 bits four per byte, lowest first. The row is zero-padded to whole bytes. Takes and
    returns numpy or torch alike.
    """
    is_torch = isinstance(codes, Tensor)
    a = codes.cpu().numpy() if is_torch else np.asarray(codes)
    if a.dtype != np.uint8:
        raise TypeError(f"codes must be uint8, not {a.dtype}")
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be 1..8, not {bits}")
    if a.size and int(a.max()) >> bits:
        raise ValueError(f"a code does not fit in {bits} bits")
    n = a.shape[-1]
    stream = np.unpackbits(a[..., None], axis=-1, bitorder="little")[..., :bits]
    stream = stream.reshape(*a.shape[:-1], n * bits)
    pad = (-stream.shape[-1]) % 8
    if pad:
        stream = np.concatenate([stream, np.zeros((*a.shape[:-1], pad), np.uint8)], axis=-1)
    packed = np.packbits(stream, axis=-1, bitorder="little")
    return torch.from_numpy(packed) if is_torch else packed


def unpack_int(packed, bits: int, n: int):
    """Inverse of :func:`pack_int`: the first ``n`` codes of each row."""
    is_torch = isinstance(packed, Tensor)
    a = packed.cpu().numpy() if is_torch else np.asarray(packed, dtype=np.uint8)
    stream = np.unpackbits(a, axis=-1, bitorder="little")[..., : n * bits]
    stream = stream.reshape(*a.shape[:-1], n, bits)
    stream = np.concatenate([stream, np.zeros((*stream.shape[:-1], 8 - bits), np.uint8)], axis=-1)
    codes = np.packbits(stream, axis=-1, bitorder="little")[..., 0]
    return torch.from_numpy(codes) if is_torch else codes
