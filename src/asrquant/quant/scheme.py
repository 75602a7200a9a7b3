"""What a quantized weight is: number format, bit width, group size, symmetry, scale dtype.

The vocabulary follows compressed-tensors' ``QuantizationArgs`` (num_bits, type int/float,
symmetric, strategy group/channel, group_size, scale_dtype) so that :meth:`QuantScheme.to_compressed_tensors_args`
is a one-to-one mapping and the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

FORMATS = ("int", "nvfp4", "mxfp4")
# The dtypes an int scheme's scales may be stored in; the scales are rounded to it when made.
SCALE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DEFAULT_SCALE_DTYPE = "float32"

# Block sizes fixed by the two FP4 formats' definitions.
NVFP4_GROUP = 16  # E2M1 values, one FP8 E4M3 scale per 16, one FP32 scale per tensor
MXFP4_GROUP = 32  # E2M1 values, one E8M0 (power of two) scale per 32 (OCP MX v1.0)


@dataclass(frozen=True)
class QuantScheme:
    """One weight quantization scheme.

    format:      "int" (uniform integer grid), "nvfp4" or "mxfp4" (E2M1 values)
    bits:        2..8 for "int"; 4 for the FP4 formats
    group_size:  elements of one input row sharing a scale; -1 = one scale per output channel
    symmetric:   int only: no zero point (codes centred on 2^(bits-1)); FP4 is always symmetric
    scale_dtype: int only: "float32", "float16" or "bfloat16", the dtype the per-group scales are
                 stored in. The algorithms round each scale to it before choosing codes, so the
                 codes are the best ones for the scale actually stored. FP4 formats fix their own
                 scales (E4M3, E8M0) and keep the default.
    """

    format: str = "int"
    bits: int = 4
    group_size: int = 128
    symmetric: bool = False
    scale_dtype: str = DEFAULT_SCALE_DTYPE

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, not {self.format!r}")
        if isinstance(self.bits, bool) or not isinstance(self.bits, int):
            raise ValueError(f"bits must be an integer, not {self.bits!r}")
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int):
            raise ValueError(f"group_size must be an integer, not {self.group_size!r}")
        if self.scale_dtype not in SCALE_DTYPES:
            raise ValueError(f"scale_dtype must be one of {', '.join(SCALE_DTYPES)}, not {self.scale_dtype!r}")
        if self.format == "int":
            if not 2 <= self.bits <= 8:
                raise ValueError(f"bits must be in 2..8 for int, not {self.bits}")
            if self.group_size != -1 and self.group_size < 1:
                raise ValueError(f"group_size must be -1 (per channel) or >= 1, not {self.group_size}")
        else:
            want = NVFP4_GROUP if self.format == "nvfp4" else MXFP4_GROUP
            if self.bits != 4 or self.group_size != want or not self.symmetric:
                raise ValueError(
                    f"{self.format} is fixed by its definition: bits=4, group_size={want}, symmetric=true "
                    f"(got bits={self.bits}, group_size={self.group_size}, symmetric={self.symmetric})"
                )
            if self.scale_dtype != DEFAULT_SCALE_DTYPE:
                raise ValueError(f"{self.format} fixes its own scale encoding; scale_dtype applies to int only")

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def int(cls, bits: int, group_size: int = 128, symmetric: bool = False,
            scale_dtype: str = DEFAULT_SCALE_DTYPE) -> "QuantScheme":
        return cls("int", bits, group_size, symmetric, scale_dtype)

    @classmethod
    def nvfp4(cls) -> "QuantScheme":
        return cls("nvfp4", 4, NVFP4_GROUP, True)

    @classmethod
    def mxfp4(cls) -> "QuantScheme":
        return cls("mxfp4", 4, MXFP4_GROUP, True)

    @classmethod
    def from_dict(cls, d: dict) -> "QuantScheme":
        fmt = d.get("format", "int")
        if fmt == "nvfp4":
            return cls.nvfp4()
        if fmt == "mxfp4":
            return cls.mxfp4()
        # scale_dtype is absent from dicts written before it existed: their scales were float32.
        return cls(fmt, d.get("bits", 4), d.get("group_size", 128), d.get("symmetric", False),
                   d.get("scale_dtype", DEFAULT_SCALE_DTYPE))

    # -- description ----------------------------------------------------------------------------
    @property
    def is_fp4(self) -> bool:
        return self.format in ("nvfp4", "mxfp4")

    @property
    def name(self) -> str:
        """Short label, e.g. ``int4-g64-asym``, ``int8-ch-sym-fp16``, ``nvfp4`` (float32 scales unnamed)."""
        if self.is_fp4:
            return self.format
        g = "ch" if self.group_size == -1 else f"g{self.group_size}"
        dtype = {"float32": "", "float16": "-fp16", "bfloat16": "-bf16"}[self.scale_dtype]
        return f"int{self.bits}-{g}-{'sym' if self.symmetric else 'asym'}{dtype}"

    def to_dict(self) -> dict:
        """The fields by name; ``scale_dtype`` only when it is not float32, so a default scheme's
        dict (in recipes and manifests) is what it was before the field existed."""
        d = asdict(self)
        if self.scale_dtype == DEFAULT_SCALE_DTYPE:
            del d["scale_dtype"]
        return d

    @property
    def scale_torch_dtype(self) -> torch.dtype:
        return SCALE_DTYPES[self.scale_dtype]

    def round_scales(self, scale: Tensor) -> Tensor:
        """float32 ``scale`` rounded to the stored dtype (nearest, ties to even) and back to float32.

        Clamped into the dtype's normal range first: a tiny float32 scale would otherwise round to
        zero in float16 (normals stop at 2^-14) and divide the weights by zero, and a subnormal keeps
        fewer significant bits than the scheme promises. A group that small holds weights below
        2^-14 * qmax; the coarser scale still puts them on the nearest code.
        """
        if self.scale_dtype == DEFAULT_SCALE_DTYPE:
            return scale
        info = torch.finfo(self.scale_torch_dtype)
        return scale.clamp(info.tiny, info.max).to(self.scale_torch_dtype).float()

    def group_len(self, in_features: int) -> int:
        """The actual number of elements per group for a row of ``in_features``."""
        return in_features if self.group_size == -1 else self.group_size

    def n_groups(self, in_features: int) -> int:
        g = self.group_len(in_features)
        return -(-in_features // g)

    def to_compressed_tensors_args(self):
        """The equivalent ``compressed_tensors.quantization.QuantizationArgs`` (lazy import).

        Needs the optional dependency group ``formats``. The code mapping: our symmetric int codes
        are unsigned with an implicit zero point 2^(bits-1); compressed-tensors' signed value is
        ``code - 2^(bits-1)``. Our NVFP4 per-tensor scale is a multiplier (ModelOpt's
        ``weight_scale_2``); compressed-tensors stores its reciprocal as ``weight_global_scale``.
        """
        try:
            from compressed_tensors.quantization import QuantizationArgs, preset_name_to_scheme
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("compressed-tensors is needed: pip install 'asrquant[formats]'") from e
        if self.format == "nvfp4":
            return preset_name_to_scheme("NVFP4A16", ["Linear"]).weights
        if self.format == "mxfp4":
            return preset_name_to_scheme("MXFP4A16", ["Linear"]).weights
        # compressed-tensors' own field; left unset for float32 (the library's default: the scale
        # dtype follows the observed weights) so default schemes stay as they were.
        dtype = {} if self.scale_dtype == DEFAULT_SCALE_DTYPE else {"scale_dtype": self.scale_torch_dtype}
        if self.group_size == -1:
            return QuantizationArgs(num_bits=self.bits, type="int", symmetric=self.symmetric, strategy="channel",
                                    **dtype)
        return QuantizationArgs(
            num_bits=self.bits, type="int", symmetric=self.symmetric, strategy="group", group_size=self.group_size,
            **dtype,
        )


def bits_per_weight(scheme: QuantScheme, in_features: int | None = None) -> float:
    """Average storage bits per weight element, scales and zero points included.

    int:   bits + (scale in the scheme's ``scale_dtype``: 32 or 16 bits, + packed ``bits``-bit zero
           point if asymmetric) / group length. This is the scheme's own storage; a format may
           store more: ONNX MatMulNBits keeps scales in its input's type, float32 for our float32
           graphs, whatever the scheme's dtype.
           Per-channel needs ``in_features`` for its group length; without it the (tiny) overhead
           is left out.
    nvfp4: 4 + 8/16 = 4.5 (the FP32 per-tensor scale is negligible and left out).
    mxfp4: 4 + 8/32 = 4.25.
    """
    if scheme.format == "nvfp4":
        return 4 + 8 / NVFP4_GROUP
    if scheme.format == "mxfp4":
        return 4 + 8 / MXFP4_GROUP
    overhead = torch.finfo(scheme.scale_torch_dtype).bits + (0 if scheme.symmetric else scheme.bits)
    if scheme.group_size == -1:
        return scheme.bits + (overhead / in_features if in_features else 0.0)
    return scheme.bits + overhead / scheme.group_size
