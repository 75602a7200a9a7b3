"""The small floating-point formats, bit exact: E2M1 (FP4), E4M3 (FP8, "fn": no infinities) and
E8M0 (a power-of-two scale), plus the scale rules of NVFP4 and MXFP4.

Encoders round to nearest, ties to even, and saturate to the largest finite value; decoders
are table look-ups built from the formats' definitions. Codes are uint8 tensors holding the bit
pattern (E2M1 in the low 4 bits: sign in bit 3, exponent bits 2..1, mantissa bit 0).

    E2M1: bias 1; magnitudes 0, 0.5 (subnormal), 1, 1.5, 2, 3, 4, 6
    E4M3: bias 7; subnormals m/8 * 2^-6 (smallest 2^-9); largest finite 448 (0x7E);
          0x7F / 0xFF are NaN
    E8M0: value 2^(e - 127) for e in 0..254; 255 is NaN
"""

from __future__ import annotations

import torch
from torch import Tensor

E2M1_MAX = 6.0
E4M3_MAX = 448.0
E8M0_BIAS = 127
E2M1_EMAX = 2  # exponent of E2M1's largest binade (4..6), used by the MX scale rule

# Magnitudes of E2M1 codes 0..7; codes 8..15 are their negatives.
E2M1_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
_E2M1_MID = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)
# At a tie between grid points j and j+1, ties-to-even goes up when code j+1 is even.
_E2M1_TIE_UP = (False, True, False, True, False, True, False)


def e2m1_values(device=None) -> Tensor:
    """float32 [16]: the value of each E2M1 code."""
    g = torch.tensor(E2M1_GRID, dtype=torch.float32, device=device)
    return torch.cat([g, -g])


def e2m1_encode(x: Tensor) -> Tensor:
    """Round ``x`` (already divided by its scale) to E2M1 codes: nearest, ties to even, saturating.

    A value that rounds to zero is encoded as +0 whatever its sign (canonical zero).
    """
    if torch.isnan(x).any():
        raise ValueError("cannot encode NaN as E2M1")
    a = x.abs().float()
    mids = torch.tensor(_E2M1_MID, dtype=torch.float32, device=a.device)
    idx = torch.bucketize(a, mids)  # number of midpoints strictly below a
    ties_up = torch.tensor([m for m, up in zip(_E2M1_MID, _E2M1_TIE_UP) if up], device=a.device)
    idx = idx + torch.isin(a, ties_up)
    idx = idx.to(torch.uint8)
    neg = (x < 0) & (idx > 0)
    return idx | (neg.to(torch.uint8) << 3)


def e2m1_decode(codes: Tensor) -> Tensor:
    return e2m1_values(codes.device)[codes.long() & 0xF]


# --- E4M3 (fn) ---------------------------------------------------------------------------------


def _e4m3_table() -> Tensor:
    vals = []
    for b in range(256):
        s, e, m = b >> 7, (b >> 3) & 0xF, b & 0x7
        if e == 0xF and m == 0x7:
            v = float("nan")
        elif e == 0:
            v = m / 8 * 2.0**-6
        else:
            v = (1 + m / 8) * 2.0 ** (e - 7)
        vals.append(-v if s else v)
    return torch.tensor(vals, dtype=torch.float32)


_E4M3_TABLE = _e4m3_table()


def e4m3_decode(bits: Tensor) -> Tensor:
    return _E4M3_TABLE.to(bits.device)[bits.long()]


def e4m3_encode(x: Tensor) -> Tensor:
    """float -> E4M3 bit patterns (uint8): nearest, ties to even, saturating at +-448; NaN -> 0x7F."""
    x64 = x.double()
    nan = torch.isnan(x64)
    a = x64.abs().clamp(max=E4M3_MAX).nan_to_num(0.0)
    # Quantum of the binade of a (subnormals share the quantum of the smallest normal binade).
    _, exp = torch.frexp(a)  # a = mant * 2^exp, mant in [0.5, 1)
    e = (exp - 1).clamp(min=-6)
    quantum = torch.pow(2.0, (e - 3).double())
    q = torch.round(a / quantum) * quantum  # exact in float64; torch.round is half-to-even
    q = q.clamp(max=E4M3_MAX)
    # q -> bits
    _, exp_q = torch.frexp(q)
    eq = exp_q - 1
    normal = (q >= 2.0**-6)
    exp_field = torch.where(normal, eq + 7, torch.zeros_like(eq))
    man = torch.where(normal, q / torch.pow(2.0, eq.double()) * 8 - 8, q / 2.0**-9)
    bits = (exp_field.long() << 3) | man.round().long()
    bits = bits | torch.signbit(x64).long() << 7  # -0 stays -0, as an IEEE-style cast does
    bits = torch.where(nan, torch.full_like(bits, 0x7F), bits)
    return bits.to(torch.uint8)


# --- E8M0 --------------------------------------------------------------------------------------


def e8m0_decode(bits: Tensor) -> Tensor:
    """2^(bits - 127) as float32 (2^-127 is a float32 subnormal, still exact); 255 -> NaN."""
    v = torch.pow(2.0, bits.double() - E8M0_BIAS).float()
    return torch.where(bits == 255, torch.full_like(v, float("nan")), v)


def e8m0_from_exponent(exponent: Tensor) -> Tensor:
    """Unbiased integer exponent -> E8M0 bits, clamped to the finite range 2^-127..2^127."""
    return (exponent.long() + E8M0_BIAS).clamp(0, 254).to(torch.uint8)


def floor_log2(x: Tensor) -> Tensor:
    """floor(log2(x)) for x > 0, exact (from the float exponent, not a rounded log)."""
    _, exp = torch.frexp(x.double())
    return exp.long() - 1


# --- the two FP4 formats' scale rules ---------------------------------------------------------


def nvfp4_tensor_scale(amax: Tensor) -> Tensor:
    """NVFP4's FP32 per-tensor scale: maps the tensor's amax to the top of E4M3 x E2M1 (448 * 6).

    A multiplier (NVIDIA ModelOpt's ``weight_scale_2``): value = e2m1 * e4m3_scale * tensor_scale.
    An all-zero tensor gets 1.0.
    """
    s = (amax.float() / (E4M3_MAX * E2M1_MAX)).reshape(())
    return torch.where(s > 0, s, torch.ones_like(s))


def nvfp4_block_scales(block_amax: Tensor, tensor_scale: Tensor) -> Tensor:
    """E4M3 bits of each 16-block's scale: amax / 6 in units of the tensor scale, rounded to E4M3."""
    return e4m3_encode(block_amax.float() / E2M1_MAX / tensor_scale.float())


def mxfp4_block_scales(block_amax: Tensor, rule: str = "floor") -> Tensor:
    """E8M0 bits of each 32-block's scale.

    "floor" is the OCP MX v1.0 rule: 2^(floor(log2 amax) - emax(E2M1)=2). It can clip: the block's
    largest magnitude lands in [4, 8) and saturates to 6 above 6. "ceil" takes the next power
    of two (no clipping, coarser steps). An all-zero block gets the smallest scale.
    """
    tiny = torch.finfo(torch.float32).tiny
    e = floor_log2(block_amax.float().clamp(min=tiny)) - E2M1_EMAX
    if rule == "ceil":
        e = e + (block_amax.float() / torch.pow(2.0, e.double()).float() > E2M1_MAX).long()
    elif rule != "floor":
        raise ValueError(f"unknown MX scale rule {rule!r}")
    bits = e8m0_from_exponent(e)
    return torch.where(block_amax > 0, bits, torch.zeros_like(bits))
