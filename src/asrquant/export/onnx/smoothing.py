"""Per-input-channel smoothing for the int8 encoder GEMMs of ``asrquant export --compute int8``.

The int8 chain (:mod:`.int8_matmul`) quantizes activations with one scale per row (per audio
frame): a row's few large channels set the step for all of its channels. Smoothing (SmoothQuant,
Xiao et al. 2023) moves part of that range into the weight, which has an int8 scale per output
channel and room to spare:

    x @ W = (x / s) @ (diag(s) W),   s_k = max|x_k| ** alpha / max|W_k| ** (1 - alpha)

with ``s`` rounded to a power of two, so that neither product rounds anything. ``x / s`` is one
Mul in the encoder graph and ``diag(s) W`` is applied where the int8 weight is made (at load for
4- and 8-bit codes, at export for float weights), so the recipe's codes, and with them the
fake-quant reference, do not change. ``max|x_k|`` comes from calibration clips run through the
fake-quant encoder; alpha is chosen per Linear, among ALPHAS and "no smoothing", by the int8
chain's relative output error on those clips' frames, because no single alpha suits every Linear
(on whisper-base the chosen alphas differ by Linear and some Linears are best left unsmoothed;
figures: benchmarks/onnx-export/README.md, "Figures formerly in code comments").
The manifest records each Linear's choice and errors.

Why by hand: onnxruntime's quantizer smooths only inside its static QDQ flow, and the Linears'
weights here are the recipe's codes, not float tensors it could rewrite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...quant.int8_chain import channels_int8, rows_int8

ALPHAS = (0.25, 0.5, 0.75)
ROW_STRIDE = 4  # every 4th frame of a clip scores the candidates (rows are quantized independently)


@dataclass
class Smoothing:
    """One Linear's smoothing: ``scale`` [K] (None: not smoothed), the alpha that chose it and the
    int8 chain's relative output error on the calibration frames without and with it."""

    scale: np.ndarray | None
    alpha: float | None
    error_plain: float
    error: float

    def to_dict(self) -> dict:
        return {"alpha": self.alpha, "calib_rel_error": round(self.error, 5),
                "calib_rel_error_unsmoothed": round(self.error_plain, 5)}


def _power_of_two(s: torch.Tensor) -> torch.Tensor:
    """``s`` rounded to powers of two (within float16's normal range): dividing the activations
    and multiplying the weights by them is exact in float32, and float16 storage holds them."""
    return torch.exp2(torch.round(torch.log2(s)).clamp(-14, 15))


def _inputs(model: nn.Module, names: list[str], mels: list[np.ndarray], fn) -> None:
    """Run the encoder on each log-mel with ``fn(name, x)`` called on the rows every Linear of
    ``names`` multiplies (after its input scale, as the graph's MatMul sees them). Linears of
    ``names`` outside the encoder (the decoder's cross-attention keys and values, which the encoder
    graph computes) are run on the encoder's output."""
    def hook(module, args, name):
        x = args[0].detach().float().reshape(-1, args[0].shape[-1])
        inv = getattr(module, "inv_input_scale", None)
        fn(name, x * inv if inv is not None else x)

    handles = [model.get_submodule(n).register_forward_pre_hook(lambda m, a, n=n: hook(m, a, n)) for n in names]
    try:
        with torch.no_grad():
            for mel in mels:
                audio = model.encoder(torch.from_numpy(np.asarray(mel, np.float32))[None])
                for n in names:
                    if not n.startswith("encoder."):
                        model.get_submodule(n)(audio)
    finally:
        for h in handles:
            h.remove()


def smoothing_factors(model: nn.Module, names: list[str], mels: list[np.ndarray],
                      progress: bool = False) -> dict[str, Smoothing]:
    """The smoothing of every Linear in ``names`` (encoder Linears of ``model``) from the frames
    of ``mels``: two passes, the channel maxima, then every candidate's error."""
    from ...progress import track

    amax = {}

    def record_max(name, x):
        m = x.abs().amax(0)
        amax[name] = m if name not in amax else torch.maximum(amax[name], m)

    _inputs(model, names, track(mels, progress, "smoothing: channel maxima"), record_max)
    w_kn = {n: model.get_submodule(n).weight.detach().float().t() for n in names}
    cands = {}
    for n in names:
        w_max = w_kn[n].abs().amax(1).clamp(min=1e-5)
        x_max = amax[n].clamp(min=1e-5)
        scales = [None] + [_power_of_two(x_max ** a / w_max ** (1 - a)) for a in ALPHAS]
        cands[n] = [(s, channels_int8(w_kn[n] if s is None else w_kn[n] * s[:, None])) for s in scales]
    err = {n: torch.zeros(len(cands[n]), dtype=torch.float64) for n in names}
    ref_sq = dict.fromkeys(names, 0.0)

    def score(name, x):
        x = x[::ROW_STRIDE]
        ref = x @ w_kn[name]
        ref_sq[name] += float(ref.double().pow(2).sum())
        for i, (s, wq) in enumerate(cands[name]):
            y = rows_int8(x if s is None else x / s) @ wq
            err[name][i] += float((y - ref).double().pow(2).sum())

    _inputs(model, names, track(mels, progress, "smoothing: choosing alpha"), score)
    out = {}
    for n in names:
        rel = (err[n] / max(ref_sq[n], 1e-30)).sqrt()
        best = int(torch.argmin(rel))
        s = cands[n][best][0]
        out[n] = Smoothing(None if s is None else s.numpy().astype(np.float32),
                           None if best == 0 else ALPHAS[best - 1], float(rel[0]), float(rel[best]))
    return out
