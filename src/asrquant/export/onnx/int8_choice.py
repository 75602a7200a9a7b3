"""Which Linears of the encoder graph run the int8 chain of ``--compute int8``, by measured cost:
``asrquant export ... --compute int8 --int8-skip N`` keeps the N costliest on float compute.

The int8 chain (:mod:`.int8_matmul`) does not compute the fake-quant numbers: it rounds each
Linear's input per row and requantizes its weight per output channel, and how much that moves
the model's output differs by Linear (a Linear whose rows carry a few loud channels loses most
of the others to the per-row step). A Linear's cost is measured as :mod:`asrquant.quant.sensitivity`
measures a tensor's, by the teacher-forced KL per position between the float model's next-token
distributions and the model's, averaged over calibration clips: here the fake-quant model with
only that Linear's product through the int8 chain, emulated in torch
(:func:`asrquant.quant.int8_chain.rows_int8` of its input, ``channels_int8`` of its weight, its
input smoothing where it has one), MINUS the KL of the fake-quant model alone. So the cost is
the KL increase the int8 chain adds to the recipe's own, against the float model the artifact
should stay close to; it can be below zero where the rounding happens to move the output toward
the float model's on these clips. The KL to the fake-quant model itself (never below zero: the
chain's own perturbation) is recorded beside it; the choice uses the increase.

Why a count rather than a KL threshold: the speed given up is per Linear kept on float compute,
while a KL's scale depends on the model and the clips, so a threshold set on one model means
nothing on another; the count is chosen on held-out clips (benchmarks/int8-choice/README.md).
Costs are taken one Linear at a time (the first-order assumption of the sensitivity measurement):
each Linear's pass re-runs the model on every clip, the encoder included where the Linear is in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ... import families
from ...errors import AsrQuantError
from ...progress import bar
from ...quant.int8_chain import channels_int8, rows_int8
from ...quant.linear import QuantEmbedding, QuantLinear
from ...quant.refine import kl_per_position, teacher_log_probs
from .int8_matmul import own_int8

COST_CLIPS = 16  # calibration clips a cost is measured on (the smoothing's count: one set of clips for both)


@dataclass
class Int8Cost:
    """One Linear's measured cost of the int8 chain (teacher-forced KL per position, mean over clips)."""

    kl_increase: float  # KL(float || fake-quant, this Linear int8) - KL(float || fake-quant)
    kl_to_fake_quant: float  # KL(fake-quant || fake-quant, this Linear int8)

    def to_dict(self) -> dict:  # full precision: an export given these costs back chooses as the measuring one did
        return {"kl_increase": self.kl_increase, "kl_to_fake_quant": self.kl_to_fake_quant}


@dataclass
class Int8Costs:
    """The costs of every Linear of an encoder graph and the clips they were measured on."""

    by_linear: dict[str, Int8Cost]
    calibration: dict | None = None  # Calibration.to_dict(): manifest, ids, audio sha256
    kl_fake_quant: float | None = None  # KL(float || fake-quant) on the same clips: the scale of the costs

    @classmethod
    def from_variant(cls, info: dict) -> "Int8Costs":
        """The costs a variant's manifest entry recorded (:func:`record`), to export another choice
        from them without measuring again."""
        if "int8_choice" not in info:
            raise AsrQuantError("this variant records no int8 costs (export it with --int8-skip)")
        costs = {n: Int8Cost(t["int8_cost"]["kl_increase"], t["int8_cost"]["kl_to_fake_quant"])
                 for n, t in info["tensors"].items() if "int8_cost" in t}
        order = {n: i for i, n in enumerate(info["int8_choice"]["linears"])}
        choice = info["int8_choice"]
        return cls(dict(sorted(costs.items(), key=lambda kv: order[kv[0]])), choice["calibration"],
                   choice.get("kl_fake_quant"))


def emulate_int8(module: nn.Module, smooth: np.ndarray | None = None) -> torch.utils.hooks.RemovableHandle:
    """Make ``module`` (an nn.Linear or a QuantLinear) compute what its int8 chain in the graph
    computes, until the returned handle is removed: its input (after its AWQ input scale, as the
    graph's MatMul sees it) divided by ``smooth``, rounded per row; its weight times ``smooth``
    requantized per output channel (the recipe's own int8 codes where the exporter keeps them,
    and then unsmoothed, as :func:`.int8_matmul.replace_linears_int8` does)."""
    weight = module.weight.detach().float()
    inv = getattr(module, "inv_input_scale", None)
    own = own_int8(getattr(module, "qweight", None)) is not None
    s = None if own or smooth is None else torch.as_tensor(smooth, dtype=torch.float32, device=weight.device)
    w_kn = weight.t() if own else channels_int8((weight.t() if s is None else weight.t() * s[:, None]).cpu())
    w_kn = w_kn.to(weight.device)
    bias = None if module.bias is None else module.bias.detach().float()

    def hook(m, args, out):
        x = args[0].float()
        if inv is not None:
            x = x * inv
        y = rows_int8(x if s is None else x / s) @ w_kn
        return (y if bias is None else y + bias).to(out.dtype)

    return module.register_forward_hook(hook)


def measure(model: nn.Module, names: list[str], samples: list, calibration: dict | None = None,
            float_model: nn.Module | None = None, smooth: dict[str, np.ndarray] | None = None,
            progress: bool = False) -> Int8Costs:
    """Every Linear of ``names``' :class:`Int8Cost` on ``samples`` (the family's CalibSamples;
    ``calibration`` says which clips they are), ``model`` the fake-quant model, ``float_model``
    the float one (only its distributions are used; ``model`` itself when nothing is quantized)."""
    cal = families.module(model.family, "calib")
    n = len(samples)
    if n == 0:
        raise AsrQuantError("the int8 costs are measured on calibration clips: none were given")
    if float_model is None:
        if any(isinstance(m, (QuantLinear, QuantEmbedding)) for m in model.modules()):
            raise AsrQuantError("the int8 costs are measured against the float model; it was not given")
        float_model = model
    dev = next(model.parameters()).device
    full = lambda i: cal.teacher_forced_logits(model, samples[i], dev)  # noqa: E731
    teacher = teacher_log_probs(lambda i: cal.teacher_forced_logits(float_model, samples[i], dev), n)
    own = teacher_log_probs(full, n)
    split = None
    if hasattr(cal, "encoder_features"):  # a Linear after the encoder leaves its output as it is: encode once
        with torch.no_grad():
            feats = [cal.encoder_features(model, s, dev) for s in samples]
        split = lambda i: cal.logits_from_features(model, samples[i], feats[i], dev)  # noqa: E731
    base = sum(kl_per_position(own[i], teacher[i]).item() for i in range(n)) / n
    costs = {}
    with torch.no_grad(), bar("int8 cost per Linear", len(names), progress) as advance:
        for name in names:
            fn = full if split is None or name.startswith(cal.ENCODER_PREFIX) else split
            handle = emulate_int8(model.get_submodule(name), (smooth or {}).get(name))
            try:
                to_float = to_own = 0.0
                for i in range(n):
                    logits = fn(i)
                    to_float += kl_per_position(logits, teacher[i]).item()
                    to_own += kl_per_position(logits, own[i]).item()
            finally:
                handle.remove()
            costs[name] = Int8Cost(to_float / n - base, to_own / n)
            advance()
    return Int8Costs(costs, calibration, base)


def check_int8_skip(count: int | None, compute: str) -> None:
    if count is not None and compute != "int8":
        raise AsrQuantError(f"--int8-skip chooses which Linears run int8: it needs --compute int8 (not {compute})")


def ranked(costs: dict[str, Int8Cost]) -> list[str]:
    """Costliest first (ties: the first in ``costs``' order, which is the graph's)."""
    return sorted(costs, key=lambda n: -costs[n].kl_increase)


def choose_float(costs: Int8Costs, count: int, names: list[str]) -> frozenset[str]:
    """The ``count`` Linears of highest cost, ``costs`` being those of exactly ``names`` (the
    encoder graph's Linears)."""
    if set(costs.by_linear) != set(names):
        raise AsrQuantError("the int8 costs given are not those of this encoder graph's Linears "
                            f"({len(costs.by_linear)} costs, {len(names)} Linears)")
    if not 0 <= count <= len(names):
        raise AsrQuantError(f"--int8-skip {count}: the encoder graph has {len(names)} Linears that run int8; "
                            f"give 0 to {len(names)}")
    return frozenset(ranked(costs.by_linear)[:count])


def record(info: dict, costs: Int8Costs, keep_float: frozenset[str]) -> None:
    """The variant's manifest entry gains the choice, and every encoder-graph Linear its cost, its
    rank (1 = costliest) and whether it runs int8."""
    order = ranked(costs.by_linear)
    for rank, name in enumerate(order, 1):
        cost = costs.by_linear[name]
        info["tensors"][name]["int8_cost"] = {**cost.to_dict(), "rank": rank, "int8": name not in keep_float}
    info["int8_choice"] = {
        "measure": "kl_increase: teacher-forced KL per position to the float model of the fake-quant model with "
                   "only this Linear through the emulated int8 chain, minus the fake-quant model's own; mean "
                   "over the calibration clips",
        "calibration": costs.calibration, "kl_fake_quant": costs.kl_fake_quant, "linears": list(costs.by_linear),
        "float_compute": [n for n in order if n in keep_float],
        "int8": len(order) - len(keep_float), "of": len(order)}
