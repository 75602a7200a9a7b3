"""Training a rule's refinement (``refine = "dwq"``) on the calibration clips, at two levels.

Block: while calibration streams, the float block's outputs on its (already quantized) inputs
are recorded in the same pass that collects the statistics, and its inputs are held by the
adapter; after the start algorithm has quantized the block, the learned weights are trained so
the quantized block's outputs match them (relative squared error). Where the adapter gives
``run_one`` (Whisper), each step is one calibration sample (``batch`` of them, gradients summed),
and for a long input (the encoder's 1500 frames of a 30-s window) ``positions`` random positions
of it: the float targets are never recomputed and a step costs a fraction of a pass over all clips.
Otherwise (an adapter without ``run_one``, a head that is no module) each step is one call of the
block within its ``run``.

End to end: after every block is quantized, the learned weights of all such Linears are trained
together on the KL between the float model's next-token distributions (computed once, before
anything was quantized) and the quantized model's, at every teacher-forced position of one clip
per step (``batch`` clips, gradients summed), the encoder quantized. The family computes the logits
(``models/<family>/calib.teacher_forced_logits``). A token table whose ``[embedding]`` rule
refines (end to end only: it is no block's) learns with them, through its lookups and, where the
model ties its logits to it (Whisper), through the logits themselves.

Either level checks its loss on a few calibration samples (``check_clips``, CHECK_UNITS by default)
before training and CHECKS times during it, keeps the best check's learned numbers (the start's
when none was lower) and stops early once the loss stops falling (see ``train``). The check samples
are held out: no training step uses them (``_split_units``), so the early stop and the kept check
judge the refinement on samples it did not fit. On whisper-tiny.en the end-to-end level, checked on
samples it also trained on, lowered its check KL by 60 % and still transcribed the reporting clips
worse than its GPTQ start (benchmarks/refinement/README.md): a check on training samples measures
the fit, not the gain. Only tiny calibration sets (no more than twice the check samples, the
tests') train on every sample, checks included: holding out half of them would leave too little to
learn from. End to end, ``check = "greedy"`` makes a check free-running: the check clips are
decoded greedily (the family's ``calib.free_running_tokens``) and compared with the float model's
own greedy tokens, decoded once before anything is quantized (``float_teacher``); the token edit
distance decides, the KL breaks ties (``FreeRunCheck``).

A refinement whose options ask for the int8 chain (dwq's ``activations = "int8"``) trains, and
checks, its Linears through what the CPU export's int8 GEMMs compute (``_Learning``), at both
levels: the float targets stay the float model's, so the loss is the int8 artifact's distance to
float and a refinement is kept only when that fell. What it leaves is the usual QuantLinear; the
blocks calibrated after a block-level refinement see its fake-quant outputs, not int8 ones.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..eval.metrics import edit_distance
from .algorithms import get_algorithm
from .int8_chain import channels_int8_ste, keeps_own_codes, rows_int8_ste
from .linear import QuantEmbedding, QuantLinear
from .qtensor import QuantizedWeight
from .recipe import Rule

FLOAT_LR = 1e-4  # Adam's step for float parameters (norms, biases) when a refinement trains them
CHECK_UNITS = 4  # calibration samples the loss is checked on (a check costs their forward passes)
CHECKS = 8  # loss checks over a refinement's steps
PATIENCE = 2  # checks in a row, past half the steps, whose loss did not fall: training stops


def set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def submodule_or_none(model: nn.Module, name: str) -> nn.Module | None:
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def first_tensor(out) -> Tensor:
    """A module's output tensor (the first one of a tuple such as (hidden, cache))."""
    while not isinstance(out, Tensor):
        out = out[0]
    return out


def _detached(out):
    if isinstance(out, Tensor):
        return out.detach()
    if isinstance(out, (tuple, list)):
        return type(out)(_detached(o) for o in out)
    return out


def rel_mse(y: Tensor, target: Tensor) -> Tensor:
    t = target.to(y.device).float()
    return F.mse_loss(y.float(), t) / t.pow(2).mean().clamp(min=1e-12)


class _Learning(nn.Module):
    """Stands in for a QuantLinear while its weight is learned. With ``int8`` its product is the
    CPU export's int8 chain (``quant/int8_chain.py``: input per row, weight per output channel;
    the weight as it is where ``own``, an 8-bit per-channel scheme whose codes the chain keeps),
    rounded forward and straight through backward."""

    def __init__(self, learned: nn.Module, bias: Tensor | None, train_bias: bool, int8: bool = False,
                 own: bool = False):
        super().__init__()
        self.learned, self.int8, self.own = learned, int8, own
        self.fixed: Tensor | None = None  # the learned weight held while a check runs (Session.checking)
        if bias is None:
            self.bias = None
        elif train_bias:
            self.bias = nn.Parameter(bias.detach().clone())
        else:
            self.register_buffer("bias", bias.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        w = self.learned() if self.fixed is None else self.fixed
        if self.int8:
            x = rows_int8_ste(x.float())
            w = w if self.own else channels_int8_ste(w)
        return F.linear(x, w, self.bias)


class _LearningTable(nn.Module):
    """Stands in for a QuantEmbedding while its table is learned. ``weight`` is the learned table,
    so the lookups and a projection tied to the table (Whisper: ``logits = x @ weight.T``) both
    read it and both give it gradients. Only the end-to-end level trains a table."""

    def __init__(self, learned: nn.Module):
        super().__init__()
        self.learned = learned
        self.fixed: Tensor | None = None

    @property
    def weight(self) -> Tensor:
        return self.learned() if self.fixed is None else self.fixed

    def forward(self, tokens: Tensor) -> Tensor:
        return F.embedding(tokens, self.weight)


@dataclass
class Item:
    name: str
    weight: Tensor  # the float weight the start quantized
    rule: Rule


class Session:
    """The Linears (QuantLinears from a start) and tables (QuantEmbeddings) being refined in
    ``model``, and their optimisers."""

    def __init__(self, model: nn.Module, items: Sequence[Item], steps: int, float_modules: Sequence[nn.Module] = ()):
        self.model, self.items = model, list(items)
        self.starts: dict[str, QuantLinear] = {}
        self.opts: list = []
        train_float = any(it.rule.all_refine_options().get("float_params", False) for it in items)
        for it in self.items:
            q = model.get_submodule(it.name)
            opts = it.rule.all_refine_options()
            algo = get_algorithm(it.rule.refine)
            learned = algo.learner(it.weight.to(q.weight.device), q.qweight, **opts)
            if isinstance(q, QuantEmbedding):
                if algo.int8_chain(opts):
                    raise ValueError(f"{it.name}: a table is not in the int8 chain; it trains on float products")
                m = _LearningTable(learned)
            else:
                m = _Learning(learned, q.bias, train_float, algo.int8_chain(opts), keeps_own_codes(q.qweight))
            set_module(model, it.name, m)
            self.starts[it.name] = q
            self.opts.append(algo.optimiser(learned, steps, **opts))
        self.floats: list[tuple[Tensor, Tensor]] = []
        if train_float:
            ps = [getattr(model.get_submodule(it.name), "bias", None) for it in self.items]
            ps = [p for p in ps if isinstance(p, nn.Parameter)]
            for mod in float_modules:
                ps += [p for n, p in mod.named_parameters(recurse=False)]
            self.floats = [(p, p.detach().clone()) for p in ps]
        self.requires = {p: p.requires_grad for p in model.parameters()}
        learning = {id(p) for it in self.items for p in model.get_submodule(it.name).learned.parameters()
                    if p.requires_grad}
        learning |= {id(p) for p, _ in self.floats}
        for p in model.parameters():  # gradients only where something learns
            p.requires_grad_(id(p) in learning)
        self.adam = torch.optim.Adam([p for p, _ in self.floats], lr=FLOAT_LR) if self.floats else None

    def learned_params(self) -> list[Tensor]:
        ps = [p for it in self.items for p in self.model.get_submodule(it.name).learned.parameters()]
        return ps + [p for p, _ in self.floats]

    def snapshot(self) -> list[Tensor]:
        """The learned numbers now (the best so far is put back when training ends)."""
        return [p.detach().clone() for p in self.learned_params()]

    def restore(self, snap: list[Tensor]) -> None:
        with torch.no_grad():
            for p, v in zip(self.learned_params(), snap):
                p.copy_(v)

    @contextmanager
    def checking(self):
        """No gradients, and every learned weight dequantized once, not at every call: a greedy
        check's decoding calls each decoder Linear once per token."""
        mods = [self.model.get_submodule(it.name) for it in self.items]
        try:
            with torch.no_grad():
                for m in mods:
                    m.fixed = m.learned()
                yield
        finally:
            for m in mods:
                m.fixed = None

    def step(self) -> None:
        for o in self.opts:
            o.step()
        for it in self.items:
            self.model.get_submodule(it.name).learned.clamp_()
        if self.adam is not None:
            self.adam.step()
            self.adam.zero_grad(set_to_none=True)

    def finish(self, keep: bool) -> dict[str, QuantizedWeight]:
        """Put QuantLinears back: the learned ones when ``keep``, else the starts (float
        parameters restored). Returns the learned QuantizedWeights kept."""
        out = {}
        with torch.no_grad():
            for it in self.items:
                m = self.model.get_submodule(it.name)
                start = self.starts[it.name]
                if keep:
                    qw = m.learned.quantized()
                    qw.info = {**start.qweight.info, "refined": it.rule.refine}
                    if isinstance(m, _LearningTable):
                        new = QuantEmbedding(qw).to(start.weight.device)
                    else:
                        if m.int8:  # the per-layer report says which Linears learned for the int8 chain
                            qw.info["refined_for"] = "int8 chain"
                        bias = None if m.bias is None else m.bias.detach()
                        new = QuantLinear(qw, bias).to(start.weight.device)
                    out[it.name] = qw
                else:
                    new = start
                set_module(self.model, it.name, new)
            if not keep:
                for p, orig in self.floats:
                    p.copy_(orig)
        for p, r in self.requires.items():
            p.requires_grad_(r)
        return out


# --- per block ------------------------------------------------------------------------------------


class BlockRecorder:
    """Records the float block's outputs during the statistics pass: by a hook on the block's
    module (one output per call), or from what its ``run`` returns when the block is no module."""

    def __init__(self, model: nn.Module, block_name: str):
        self.model, self.name = model, block_name
        self.module = submodule_or_none(model, block_name)
        self.targets: list[Tensor] = []
        self.handle = None

    def __enter__(self):
        if self.module is not None:
            def hook(_m, _args, out):
                self.targets.append(first_tensor(out).detach().clone())
            self.handle = self.module.register_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        if self.handle is not None:
            self.handle.remove()

    def returned(self, outs) -> None:
        if self.module is None and outs is not None:
            self.targets = [first_tensor(o).detach().clone() for o in outs]


def _block_pass(run: Callable[[], object], rec: BlockRecorder, session: Session | None) -> float:
    """Mean loss over the block's calls (one step after each when ``session``)."""
    losses: list[float] = []
    module = submodule_or_none(rec.model, rec.name)  # the block may be a Linear that is now replaced
    with torch.set_grad_enabled(session is not None):
        if rec.module is not None:
            def hook(_m, _args, out):
                loss = rel_mse(first_tensor(out), rec.targets[len(losses) % len(rec.targets)])
                losses.append(loss.item())
                if session is not None:
                    loss.backward()
                    session.step()
                return _detached(out)
            h = module.register_forward_hook(hook)
            try:
                run()
            finally:
                h.remove()
        else:
            outs = run()
            loss = sum(rel_mse(first_tensor(o), t) for o, t in zip(outs, rec.targets)) / max(len(rec.targets), 1)
            losses.append(float(loss.detach()) if isinstance(loss, Tensor) else float(loss))
            if session is not None and isinstance(loss, Tensor) and loss.requires_grad:
                loss.backward()
                session.step()
    return sum(losses) / max(len(losses), 1)


def _check_units(n: int, k: int = CHECK_UNITS) -> list[int]:
    """The units (clips) on which the loss is checked: ``k`` spread over the ``n``."""
    k = min(n, k)
    return sorted({round(i * (n - 1) / max(k - 1, 1)) for i in range(k)})


def _split_units(n: int, k: int = CHECK_UNITS) -> tuple[list[int], list[int]]:
    """(units trained on, units checked on) of ``n``, ``k`` checked: the check units are held out
    once there are more than 2 * k, so early stopping judges samples no step has fitted; below that
    (the tests' tiny sets) every unit is trained on, the check units too."""
    check = _check_units(n, k)
    if n <= 2 * k:
        return list(range(n)), check
    held = set(check)
    return [i for i in range(n) if i not in held], check


def _kept_if_better(session: Session, fit: Callable[[], tuple[float, float]]
                    ) -> tuple[float, float, dict[str, QuantizedWeight]]:
    """Run ``fit`` -> (loss before, loss after) in ``session`` and keep what it learned only when the
    loss fell (the start otherwise, also when ``fit`` raises): (before, the loss kept, kept weights)."""
    keep = False
    try:
        before, after = fit()
        keep = after < before
    finally:
        kept = session.finish(keep)
    return before, (after if keep else before), kept


def train(session: Session, steps: int, step_loss: Callable[[int], Tensor], check_loss: Callable[[], float],
          advance: Callable[[], None] | None = None, batch: int = 1) -> tuple[float, float]:
    """``steps`` optimiser steps, each on the gradients of ``batch`` calls of ``step_loss(t)`` summed
    (a unit each, one backward pass at a time: the memory of one), the loss on the check units
    measured CHECKS times on the way; the learned numbers of the best check are put back (the
    start's when none was better). Past half the steps (the decaying step has halved), training
    stops once the loss has not fallen from one check to the next PATIENCE times in a row: the
    steps left would only cost time. Not before: the first, largest steps often raise the loss before the smaller
    ones bring it below the start.
    Returns (check loss before, best check loss)."""
    before = check_loss()
    best, snap, last, flat = before, session.snapshot(), before, 0
    every = max(1, steps // CHECKS)
    for t in range(steps):
        with torch.enable_grad():
            for _ in range(batch):
                step_loss(t).backward()
        session.step()
        if advance is not None:
            advance()
        if (t + 1) % every == 0 or t + 1 == steps:
            loss = check_loss()
            if loss < best:
                best, snap = loss, session.snapshot()
            flat, last = (0 if loss < last else flat + 1), loss
            if flat >= PATIENCE and 2 * (t + 1) >= steps:
                break
    session.restore(snap)
    return before, best


class _Shuffled:
    """The training units in a fresh random order every epoch (seeded: a quantization is repeatable)."""

    def __init__(self, units: Sequence[int], gen: torch.Generator):
        self.units, self.gen, self.order = list(units), gen, []

    def next(self) -> int:
        if not self.order:
            self.order = [self.units[j] for j in torch.randperm(len(self.units), generator=self.gen).tolist()]
        return self.order.pop()


def refine_block(model: nn.Module, run: Callable[[], object], rec: BlockRecorder, items: Sequence[Item],
                 advance: Callable[[], None] | None = None, run_one: Callable | None = None
                 ) -> tuple[float, float, dict[str, QuantizedWeight]]:
    """Train ``items`` (QuantLinears of one block) on the recorded outputs: (loss before, after, kept).

    With ``run_one`` (the adapter's: the block's output for one calibration sample, at chosen
    positions) each step trains on one sample not among the check samples (``_split_units``), at
    ``positions`` random positions of a long one; otherwise each step is one call of the block
    within its ``run`` (every sample: a run cannot leave some out, and the loss is checked on the
    whole pass)."""
    if not rec.targets:
        return math.nan, math.nan, {}
    opts = [it.rule.all_refine_options() for it in items]
    steps = max(o["steps"] for o in opts)
    floats = [m for m in (rec.module.modules() if rec.module is not None else ())
              if not isinstance(m, (QuantLinear, nn.Linear)) and any(True for _ in m.parameters(recurse=False))]
    if run_one is None or rec.module is None:
        return _refine_block_by_runs(model, run, rec, items, steps, floats, advance)
    # One target per sample: the recorded calls' rows (an encoder call holds a batch of clips).
    units = [t[j : j + 1] for t in rec.targets for j in range(t.shape[0])]
    rec.targets = []
    positions = max(o["positions"] for o in opts)
    gen = torch.Generator().manual_seed(0)
    trained, check = _split_units(len(units), max(o["check_clips"] for o in opts))
    order = _Shuffled(trained, gen)

    def step_loss(_t: int) -> Tensor:
        i = order.next()
        target, pos = units[i], None
        if positions and target.dim() == 3 and target.shape[1] > positions:
            pos = torch.randperm(target.shape[1], generator=gen)[:positions].sort().values
            target = target[:, pos]
        out = first_tensor(run_one(i, None if pos is None else pos.to(target.device)))
        if pos is not None and out.shape[1] != len(pos):  # the adapter gave every position
            out = out[:, pos.to(out.device)]
        return rel_mse(out, target)

    def check_loss() -> float:
        with torch.no_grad():
            return sum(rel_mse(first_tensor(run_one(i, None)), units[i]).item() for i in check) / len(check)

    session = Session(model, items, steps, floats)
    batch = max(o["batch"] for o in opts)
    return _kept_if_better(session, lambda: train(session, steps, step_loss, check_loss, advance, batch))


def _refine_block_by_runs(model, run, rec, items, steps, floats, advance):
    """Steps within the block's own ``run`` (adapters without ``run_one``): one per call."""
    calls = len(rec.targets) if rec.module is not None else 1
    epochs = max(1, math.ceil(steps / calls))
    session = Session(model, items, epochs * calls, floats)

    def epochs_of_runs() -> tuple[float, float]:
        before = _block_pass(run, rec, None)
        for _ in range(epochs):
            _block_pass(run, rec, session)
            if advance is not None:
                advance()
        return before, _block_pass(run, rec, None)

    return _kept_if_better(session, epochs_of_runs)


# --- end to end -----------------------------------------------------------------------------------


def kl_per_position(logits: Tensor, teacher_logp: Tensor) -> Tensor:
    """Mean over positions of KL(teacher || model), both [T, V]."""
    logp = F.log_softmax(logits.float(), dim=-1)
    t = teacher_logp.to(logp.device).float()
    return (t.exp() * (t - logp)).sum(-1).mean()


def teacher_log_probs(logits_fn: Callable[[int], Tensor], n: int) -> list[Tensor]:
    """The float model's log-probabilities at every position of every clip (float32: the KLs
    compared are as small as 1e-5 per position, below what float16 log-probabilities resolve)."""
    with torch.no_grad():
        return [F.log_softmax(logits_fn(i).float(), dim=-1) for i in range(n)]


class FreeRunCheck(NamedTuple):
    """An end-to-end check with ``check = "greedy"``, ordered as compared: the free-running
    disagreement first, the teacher-forced KL on the same clips for ties."""

    disagreement: float  # token edit distance to the float model's greedy tokens / their number
    kl: float


@dataclass
class Teacher:
    """What the float model gives the end-to-end level, computed before anything is quantized."""

    log_probs: list[Tensor]  # per clip, at every teacher-forced position [T, V]
    check_clips: int  # clips held out from the steps to check them (dwq's ``check_clips``)
    tokens: dict[int, list[int]] | None = None  # check = "greedy": each check clip's greedy tokens

    def split(self) -> tuple[list[int], list[int]]:
        """(clips trained on, clips checked on): ``_split_units`` over the teacher's clips."""
        return _split_units(len(self.log_probs), self.check_clips)


def e2e_check(rules: Sequence[Rule]) -> tuple[str, int]:
    """(what the end-to-end checks measure, how many clips they hold out) for the rules refining end
    to end: "greedy" if any asks for it, and the most check clips any asks for."""
    opts = [r.all_refine_options() for r in rules]
    kind = "greedy" if any(o.get("check") == "greedy" for o in opts) else "kl"
    return kind, max(o.get("check_clips", CHECK_UNITS) for o in opts)


def float_teacher(logits_fn: Callable[[int], Tensor], n: int, check_clips: int = CHECK_UNITS,
                  free_run: Callable[[int], list[int]] | None = None) -> Teacher:
    """The float model's Teacher for ``n`` clips; with ``free_run`` (clip -> the greedy tokens of the
    model as it is now) also its greedy tokens on the check clips."""
    teacher = Teacher(teacher_log_probs(logits_fn, n), check_clips)
    if free_run is not None:
        with torch.no_grad():
            teacher.tokens = {i: free_run(i) for i in teacher.split()[1]}
    return teacher


def refine_end_to_end(model: nn.Module, logits_fn: Callable[[int], Tensor], teacher: Teacher,
                      items: Sequence[Item], advance: Callable[[], None] | None = None,
                      free_run: Callable[[int], list[int]] | None = None):
    """Train ``items`` together on the teacher-forced KL, ``batch`` clips per step: (check before,
    check kept, kept weights), the checks on the clips held out from the steps (``_split_units``):
    the mean KL, or a FreeRunCheck where the teacher has greedy tokens (then ``free_run`` is
    needed: clip -> the greedy tokens of the model as it is now)."""
    steps = max(it.rule.all_refine_options()["steps"] for it in items)
    batch = max(it.rule.all_refine_options()["batch"] for it in items)
    trained, check = teacher.split()
    order = _Shuffled(trained, torch.Generator().manual_seed(0))
    if teacher.tokens is not None and free_run is None:
        raise ValueError("a greedy check needs the model's free-running decoding")

    def step_loss(_t: int) -> Tensor:
        i = order.next()
        return kl_per_position(logits_fn(i), teacher.log_probs[i])

    def check_loss():
        with session.checking():
            kl = sum(kl_per_position(logits_fn(i), teacher.log_probs[i]).item() for i in check) / len(check)
            if teacher.tokens is None:
                return kl
            errors = sum(edit_distance(teacher.tokens[i], free_run(i)) for i in check)
            return FreeRunCheck(errors / max(1, sum(len(teacher.tokens[i]) for i in check)), kl)

    session = Session(model, items, steps)
    return _kept_if_better(session, lambda: train(session, steps, step_loss, check_loss, advance, batch))
