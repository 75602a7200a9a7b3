"""GPTQ (Frantar et al., 2022): quantize a weight column by column, each column's rounding error
spread over the columns not yet quantized through the inverse Hessian of the layer's inputs.

H = X^T X over the calibration inputs X [tokens, in]. Dampening adds ``damp * mean(diag H)``
to the diagonal; when the Cholesky factorisation still fails, it is retried with ten times the
jitter (a few times) before giving up. Columns are processed in blocks of ``block_size`` with
lazy batch updates. With ``act_order`` columns go in order of decreasing H diagonal;
``static_groups`` computes every group's scale from the unquantized weight first, so groups stay
contiguous ranges of input channels and the result needs no permutation index (g_idx). Act order
with groups therefore requires static groups here.
Scales come from :func:`rtn.find_params`, already rounded to the scheme's ``scale_dtype``, so
every column's rounding error is measured against the scale that is stored. With ``clip_search``
(static groups) each group's range is first shrunk by the factor of :data:`CLIP_GRID` that
minimizes its rounding error weighted by the input energy of each column, ``sum_j H_jj (w_j -
q(w_j))^2``: a group with one outlier weight otherwise spends most of its 16 levels on it.

``float_inputs`` (asymmetric calibration, as GPTAQ: Li et al., 2025): GPTQ fits ``X W^T`` on the
inputs X the already quantized model gives the layer, so every layer reproduces its float self on
drifted inputs and the drift accumulates. With the float model's inputs X~ on the same tokens, the
target becomes the float model's output, ``min ||X~ W^T - X Q^T||``. Its unconstrained least-squares
solution is ``W* = W + W C H^-1`` with ``C = (X~ - X)^T X``, and ``||X~ W^T - X Q^T||^2 = ||X W*^T -
X Q^T||^2 + const`` (the normal equations: the residual is orthogonal to X), so GPTQ on ``W*`` with the
same H minimises it exactly; H is dampened as GPTQ's own is. The calibration measures C where a rule
asks for it (``quant.calibrate``: a float copy of the model is run beside it).
"""

from __future__ import annotations

from types import MappingProxyType

import torch
from torch import Tensor

from ...errors import AsrQuantError
from ..qtensor import QuantizedWeight
from ..scheme import QuantScheme
from ..threads import one_cpu_thread
from .registry import Algorithm, register
from .rtn import QParams, decode, encode, find_params, grouped, tensor_global_scale


class GPTQError(RuntimeError):
    pass


CLIP_GRID = tuple(1.0 - 0.025 * i for i in range(11))  # range shrink factors tried, 1.0 down to 0.75


def clip_search(w: Tensor, h_diag: Tensor, scheme: QuantScheme, global_scale: Tensor | None = None,
                grid: tuple[float, ...] = CLIP_GRID) -> Tensor:
    """Per group, the factor of ``grid`` (a ratio [out, G]) whose round-to-nearest error
    ``sum_j h_diag[j] (w - q(w))^2`` over the group's columns is least; ties go to the larger factor."""
    out, n = w.shape
    g = scheme.group_len(n)
    wg = grouped(w, g)
    hg = grouped(h_diag[None, :].float(), g)  # [1, G, g]; padding columns weigh 0
    best_err, best = None, None
    for c in sorted(grid, reverse=True):
        p = find_params(wg, scheme, global_scale, clip=c)
        zero = p.zero[..., None] if isinstance(p.zero, Tensor) else p.zero
        q = decode(encode(wg, p.scale[..., None], zero, scheme), p.scale[..., None], zero, scheme)
        err = ((wg - q) ** 2 * hg).sum(-1)
        if best is None:
            best_err, best = err, torch.full_like(err, c)
        else:
            better = err < best_err
            best_err, best = torch.where(better, err, best_err), torch.where(better, torch.full_like(err, c), best)
    return best


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def inverse_hessian_cholesky(h: Tensor, damp: float, retries: int = 4) -> tuple[Tensor, float]:
    """Upper Cholesky factor of (H + jitter I)^-1 and the relative damping that worked."""
    mean_diag = torch.mean(torch.diag(h)).item()
    if not mean_diag > 0:
        mean_diag = 1.0
    eye = torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
    d = damp
    for _ in range(retries + 1):
        l, info = torch.linalg.cholesky_ex(h + d * mean_diag * eye)
        if info.item() == 0:
            hinv = torch.cholesky_inverse(l)
            u, info = torch.linalg.cholesky_ex(hinv, upper=True)
            if info.item() == 0 and torch.isfinite(u).all():
                return u, d
        d *= 10
    raise GPTQError(f"Cholesky factorisation failed even with dampening {d / 10:g} x mean(diag H)")


def gptq(
    weight: Tensor,
    hessian: Tensor,
    scheme: QuantScheme,
    damp: float = 0.01,
    block_size: int = 128,
    act_order: bool = True,
    static_groups: bool = True,
    clip_search: bool = False,
    device: torch.device | str | None = None,
    cross: Tensor | None = None,
) -> QuantizedWeight:
    """Quantize ``weight`` [out, in] given ``hessian`` [in, in] = X^T X (any positive scaling).

    ``cross`` [in, in] = (X~ - X)^T X on the same scale as ``hessian``: fit the float inputs X~
    (``float_inputs``, see the module doc) instead of ``weight`` on X."""
    dev = torch.device(device) if device is not None else default_device()
    with one_cpu_thread(dev):
        return _gptq(weight, hessian, scheme, damp, block_size, act_order, static_groups, clip_search, dev, cross)


def float_input_target(w: Tensor, h: Tensor, cross: Tensor, damp: float) -> Tensor:
    """``W + W C (H + damp * mean(diag H) I)^-1``: the weight that, on the quantized model's inputs,
    best gives the float model's outputs (float64: H of a few hundred tokens is ill-conditioned)."""
    h64 = h.double()
    mean_diag = torch.mean(torch.diag(h64)).item()
    hd = h64 + damp * (mean_diag if mean_diag > 0 else 1.0) * torch.eye(h.shape[0], dtype=h64.dtype, device=h.device)
    shift = torch.linalg.solve(hd, cross.double().T @ w.double().T).T  # H symmetric: (H^-1 C^T W^T)^T = W C H^-1
    return (w.double() + shift).to(w.dtype)


def _gptq(weight, hessian, scheme, damp, block_size, act_order, static_groups, search, dev,
          cross=None) -> QuantizedWeight:
    w = weight.detach().to(dev, torch.float32).clone()
    out, n = w.shape
    if hessian.shape != (n, n):
        raise ValueError(f"hessian must be [{n}, {n}], got {list(hessian.shape)}")
    h = hessian.detach().to(dev, torch.float32).clone()
    info = {}
    if cross is not None:
        if cross.shape != (n, n):
            raise ValueError(f"cross must be [{n}, {n}], got {list(cross.shape)}")
        target = float_input_target(w, h, cross.detach().to(dev), damp)
        info["float_inputs_shift"] = ((target - w).norm() / w.norm().clamp(min=1e-30)).item()
        w = target
    g = scheme.group_len(n)
    grouped_scheme = g < n
    if act_order and grouped_scheme and not static_groups:
        raise ValueError("act_order with groups needs static_groups=True (no g_idx in the representation)")
    if search and grouped_scheme and not static_groups:
        raise ValueError("clip_search needs static_groups=True (lazy groups take their range as they come)")

    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0

    gs = tensor_global_scale(w, scheme)
    n_groups = scheme.n_groups(n)
    # Group parameters: all at once (static, or one group), else when a group's first column comes.
    params: QParams | None = None
    if static_groups or not grouped_scheme:
        clip = clip_search(w, torch.diag(h), scheme, gs) if search else None
        params = find_params(grouped(w, g), scheme, gs, clip=clip)
    scales, zps = [None] * n_groups, [None] * n_groups

    perm = None
    if act_order:
        perm = torch.argsort(torch.diag(h), descending=True)
        w, h = w[:, perm], h[perm][:, perm]
    col_of = perm if perm is not None else torch.arange(n, device=dev)  # original column index
    col_of_list = col_of.tolist()

    hinv, used_damp = inverse_hessian_cholesky(h, damp)
    codes = torch.zeros(out, n, dtype=torch.uint8, device=dev)
    cur: QParams | None = None

    for i1 in range(0, n, block_size):
        i2 = min(i1 + block_size, n)
        w1 = w[:, i1:i2].clone()
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            c = col_of_list[i1 + i]
            grp = c // g
            if params is not None:
                cur = params.group(grp)
            elif (i1 + i) % g == 0:
                # Lazy groups (no act order): this group's columns as updated so far.
                span = torch.cat([w1[:, i : i + g], w[:, i2 : i1 + i + g]], dim=1)
                cur = find_params(span[:, None, :], scheme, gs)
                scales[grp], zps[grp] = cur.scales, cur.zero_points
            col = w1[:, i]
            zero = cur.zero[:, 0] if isinstance(cur.zero, Tensor) else cur.zero
            q_codes = encode(col, cur.scale[:, 0], zero, scheme)
            q = decode(q_codes, cur.scale[:, 0], zero, scheme)
            codes[:, c] = q_codes
            e = (col - q) / hinv1[i, i]
            w1[:, i:] -= e[:, None] * hinv1[i, i:][None, :]
            err1[:, i] = e
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]

    if params is not None:
        st_scales, st_zps = params.scales, params.zero_points
    else:
        st_scales = torch.cat(scales, dim=1)
        st_zps = None if zps[0] is None else torch.cat(zps, dim=1)
    return QuantizedWeight(
        codes=codes.cpu(),
        scales=st_scales.cpu(),
        zero_points=None if st_zps is None else st_zps.cpu(),
        scheme=scheme,
        shape=(out, n),
        global_scale=None if gs is None else gs.cpu(),
        info={"damp": used_damp, **info},
    )


@register
class GPTQ(Algorithm):
    """Weighs every column by the Gram matrix of its inputs, so it can also fit a tied embedding
    table to the hidden states its output projection multiplies."""

    name = "gptq"
    options = MappingProxyType({"damp": (float, 0.01), "block_size": (int, 128), "act_order": (bool, True),
                                "static_groups": (bool, True), "clip_search": (bool, False),
                                "float_inputs": (bool, False)})
    quantizes_tables = True

    def wants_float_inputs(self, options):
        return bool(options.get("float_inputs"))

    def quantize(self, weight, scheme, stats, device, float_inputs=False, **options):
        cross = getattr(stats, "cross", None) if float_inputs else None
        if float_inputs and cross is None:
            raise AsrQuantError("gptq option float_inputs: the calibration measured no float-model inputs for this "
                                "weight (its family's calibration adapter runs no block one sample at a time: "
                                "Whisper's does); drop the option")
        return gptq(weight, stats.hessian, scheme, device=device, cross=cross, **options)

    def option_problem(self, options, scheme):
        grouped_scheme = scheme.group_size != -1
        if options["act_order"] and not options["static_groups"] and grouped_scheme:
            return "static_groups", "act_order with groups needs static_groups = true"
        if options["clip_search"] and not options["static_groups"] and grouped_scheme:
            return "static_groups", "clip_search with groups needs static_groups = true"
        if not options["damp"] > 0:
            return "damp", "must be > 0"
        return None
