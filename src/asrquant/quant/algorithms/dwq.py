"""DWQ: the scales, zero points and rounding of a quantized weight learned from the float model.

A refinement (a rule's ``refine = "dwq"``) of what RTN or GPTQ quantized. Per group, the scale
is ``s0 * exp(a)`` (a smooth change of every weight of the group, as mlx-lm's DWQ learns it) and,
as an option, the integer zero point ``z0 + dz`` (rounded, straight-through). Per weight, the code
is ``round(c0 + f + d)`` clamped to the code range: ``c0`` the start's code (GPTQ's, which need
not be the float weight's nearest), ``f`` where the float weight ``W / s0 + z0`` lies in its own
rounding cell (in (-0.5, 0.5), so a weight near a cell's edge flips with a small ``d``, as in
AutoRound, whose V rounds the float weight) and ``d`` in [-0.5, 0.5] the learned rounding
direction (``rounding = true``; off by default: on a GPTQ start, flipping codes by the float
weight's position raised the block loss on the small random models of the tests, where the scales
alone lowered it 2-3 x). At ``a = dz = d = 0`` the weight is exactly the
start's. The learned numbers are
trained by sign gradient descent with a linearly decaying step (AutoRound) to match the float
model (``quant/refine.py``: a block's outputs, or the next-token distributions end to end, as
mlx-lm's DWQ distils), then written back as codes, stored-dtype scales and integer zero points:
the same QuantizedWeight as the start's, so every exporter and reader works unchanged.

``activations = "int8"``: the refinement's forward computes what the int8 chain of ``asrquant
export --compute int8`` computes for the rule's Linears (``quant/int8_chain.py``: the input
rounded to int8 per row, the learned weight requantized to int8 per output channel; straight-through
gradients), at either level, so the numbers learned are those that bring the *int8 artifact*
closer to the float model, not the fake-quant one (whose products that chain does not compute).
Set it on the rules whose Linears that export runs int8 and on no other: Whisper's encoder
Linears and its decoder's cross-attention keys and values (computed by the encoder graph), the
Qwen3-ASR audio encoder's Linears. The chain is emulated without input smoothing (the ``cpu``
target's, and any export without ``--calib``); the attention scores of ``--attention int8``
(products of activations, no weight to learn) stay float here.
"""

from __future__ import annotations

import math
from types import MappingProxyType

import torch
from torch import Tensor, nn

from ..qtensor import QuantizedWeight, expand_groups, scale_values, zero_offsets
from ..scheme import QuantScheme
from .registry import Refinement, register

LEVELS = {"block": ("block",), "e2e": ("e2e",), "both": ("block", "e2e")}
CHECKS = ("kl", "greedy")  # what a check of the end-to-end level measures (option `check`)
ACTIVATIONS = ("float", "int8")  # what the trained forward multiplies: float inputs, or the int8 chain's


def _ste_round(x: Tensor) -> Tensor:
    """round(x) forward, identity backward."""
    return x + (torch.round(x) - x).detach()


class LearnedWeight(nn.Module):
    """A Linear's quantized weight whose scales, zero points and rounding take gradients."""

    def __init__(self, weight: Tensor, start: QuantizedWeight, rounding: bool = True, zero_points: bool = True):
        super().__init__()
        s = start.scheme
        if s.format != "int" or start.input_scale is not None:
            raise ValueError(f"DWQ refines integer codes without an input scale, not {s.name}")
        self.scheme, self.shape = s, tuple(start.shape)
        out, n = self.shape
        self.g = s.group_len(n)
        dev = weight.device
        self.register_buffer("w", weight.detach().float())
        self.register_buffer("s0", scale_values(s, start.scales).to(dev))
        z0 = zero_offsets(s, start.zero_points, self.s0)
        self.register_buffer("z0", z0 if isinstance(z0, Tensor) else torch.full_like(self.s0, z0))
        x0 = self.w / self._wide(self.s0) + self._wide(self.z0)
        frac = (x0 - torch.round(x0)).clamp(-0.5, 0.5) * 0.999  # strictly inside: round(c0 + f) = c0
        self.register_buffer("u0", start.codes.to(dev).float() + frac)
        # Codes that do not learn are the start's: held once, not re-rounded at every forward
        # (on whisper-tiny.en that re-rounding was a sixth of the block refinement's time).
        self.register_buffer("c0", start.codes.to(dev).float())
        self.rounding = rounding
        self.a = nn.Parameter(torch.zeros_like(self.s0))
        self.dz = nn.Parameter(torch.zeros_like(self.s0), requires_grad=zero_points and not s.symmetric)
        self.d = nn.Parameter(torch.zeros(out, n, device=dev), requires_grad=rounding)

    def _wide(self, t: Tensor) -> Tensor:
        return expand_groups(t, self.g, self.shape[1])

    def _params(self) -> tuple[Tensor, Tensor]:
        scale = self.s0 * torch.exp(self.a)
        if self.scheme.symmetric:
            return scale, self.z0
        return scale, _ste_round(self.z0 + self.dz).clamp(0, 2**self.scheme.bits - 1)

    def _codes(self) -> Tensor:
        if not self.rounding:
            return self.c0
        return _ste_round(self.u0 + self.d).clamp(0, 2**self.scheme.bits - 1)

    def forward(self) -> Tensor:
        """The dequantized weight [out, in], differentiable in a, dz and d."""
        scale, zero = self._params()
        codes = self._codes()
        out, n = self.shape
        if n % self.g == 0:  # whole groups: a broadcast over a view, no [out, in] copies of the scales
            groups = codes.view(out, n // self.g, self.g)
            zero = zero[..., None] if isinstance(zero, Tensor) else zero
            return ((groups - zero) * scale[..., None]).view(out, n)
        return (codes - self._wide(zero)) * self._wide(scale)

    @torch.no_grad()
    def clamp_(self) -> None:
        self.d.clamp_(-0.5, 0.5)

    @torch.no_grad()
    def quantized(self) -> QuantizedWeight:
        """The learned weight as the scheme stores it (the scales rounded to their dtype)."""
        scale, zero = self._params()
        scale = self.scheme.round_scales(scale)
        codes = self._codes().to(torch.uint8)
        zp = None if self.scheme.symmetric else zero.to(torch.uint8).cpu()
        return QuantizedWeight(codes=codes.cpu(), scales=scale.cpu(), zero_points=zp, scheme=self.scheme,
                               shape=self.shape)


ROUND_LR = 2.5  # the rounding's step relative to the log-scales' (a code unit vs a log-scale)


class SignSGD:
    """p -= lr_t * sign(grad), lr_t decaying linearly to 0 over ``steps`` (AutoRound's optimiser):
    every learned number moves by the same small amounts, whatever its gradient's scale."""

    def __init__(self, groups: list[tuple[list[Tensor], float]], steps: int):
        self.groups = [([p for p in ps if p.requires_grad], lr) for ps, lr in groups]
        self.steps, self.t = max(1, steps), 0

    @torch.no_grad()
    def step(self) -> None:
        decay = max(0.0, 1.0 - self.t / self.steps)
        for ps, lr in self.groups:
            for p in ps:
                if p.grad is not None:
                    p.sub_(lr * decay * torch.sign(p.grad))
                    p.grad = None
        self.t += 1


@register
class DWQ(Refinement):
    """Learned scales, zero points and rounding (DWQ / AutoRound), block by block or end to end."""

    name = "dwq"
    options = MappingProxyType({
        "level": (str, "block"),  # block | e2e | both
        "steps": (int, 100),  # at most: optimiser steps per block (block) or in all (e2e), `batch` samples each
        # samples (clips) whose gradients are summed before a step's sign is taken: a single clip's
        # sign is noisy where a number's gradient is small. Not where a block trains within its own
        # run (adapters without a one-sample pass): a step is then one call of the block
        "batch": (int, 1),
        # block level: positions of a long input (Whisper's 1500 encoder frames) trained on per step,
        # where the family can compute a block's output at chosen positions; 0 = every position
        "positions": (int, 256),
        "lr": (float, 0.005),  # sign-SGD step of the log-scales at the start (the rounding's: lr * ROUND_LR)
        "rounding": (bool, False),  # also learn each weight's rounding direction (AutoRound's V)
        "zero_points": (bool, False),  # learn the integer zero points too (asymmetric schemes)
        "float_params": (bool, False),  # also train float parameters by Adam: the block's norms and
        # biases (block level), the refined Linears' biases (end to end)
        "activations": (str, "float"),  # float | int8: train through the CPU export's int8 chain (see above)
        # calibration samples (clips, end to end) held out from the steps to judge them: the
        # snapshot kept is the one whose check was best (quant/refine.py)
        "check_clips": (int, 4),
        # what a check measures (end to end): "kl", the teacher-forced KL to the float model; or
        # "greedy", the edit distance between the tokens the model generates greedily and the float
        # model's own greedy tokens, as a share of the latter (a loop costs its length), ties
        # broken by the KL. Teacher forcing never lets an error feed the next step; transcription
        # does, and a closer KL fit has not always meant fewer word errors
        "check": (str, "kl"),
    })

    def level(self, options):
        return LEVELS[options["level"]]

    def option_problem(self, options, scheme: QuantScheme):
        if scheme.format != "int":
            return "level", f"dwq learns integer scales and zero points; {scheme.name} is not an integer scheme"
        if options["level"] not in LEVELS:
            return "level", f"must be one of: {', '.join(LEVELS)}, not {options['level']!r}"
        if options["steps"] < 1:
            return "steps", f"must be >= 1, not {options['steps']}"
        if options["batch"] < 1:
            return "batch", f"must be >= 1, not {options['batch']}"
        if options["positions"] < 0:
            return "positions", f"must be >= 0 (0: every position), not {options['positions']}"
        if not (options["lr"] > 0 and math.isfinite(options["lr"])):
            return "lr", f"must be > 0, not {options['lr']}"
        if options["check_clips"] < 1:
            return "check_clips", f"must be >= 1, not {options['check_clips']}"
        if options["check"] not in CHECKS:
            return "check", f"must be one of: {', '.join(CHECKS)}, not {options['check']!r}"
        if options["check"] == "greedy" and options["level"] != "e2e":
            return "check", "greedy decoding checks the whole model: it needs level = \"e2e\""
        if options["activations"] not in ACTIVATIONS:
            return "activations", f"must be one of: {', '.join(ACTIVATIONS)}, not {options['activations']!r}"
        return None

    def int8_chain(self, options) -> bool:
        return options["activations"] == "int8"

    def learner(self, weight: Tensor, start: QuantizedWeight, **options) -> LearnedWeight:
        return LearnedWeight(weight, start, options["rounding"], options["zero_points"])

    def optimiser(self, learned: LearnedWeight, total_steps: int, **options) -> SignSGD:
        lr = options["lr"]
        return SignSGD([([learned.d, learned.dz], lr * ROUND_LR), ([learned.a], lr)], total_steps)
