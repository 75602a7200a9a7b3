"""Calibrate on real audio and quantize a model by recipe, one block at a time.

The loop (sequential, as GPTQ does it), for every block of the model in execution order:

    1. run the block over every calibration sample's input to it, with hooks on its Linears
       accumulating, per group of Linears that read the same tensor, H = X^T X and sum |x|
    2. quantize the block's targeted Linears by their recipe rule (RTN, GPTQ, AWQ, AWQ-lite)
       and replace each by a :class:`QuantLinear`
    3. run the now quantized block to get the next block's inputs

Only one block's inputs for all samples are held at a time, and the statistics of one block, so
memory stays bounded by the largest block rather than by the model's depth.

The model family plugs in through a :class:`BlockAdapter`: it yields :class:`CalibBlock`s in
execution order, owning the data flow (what the inputs are, how the encoder output conditions
the decoder); this module owns statistics, algorithms and the report. Each family's adapter is
``CalibAdapter`` in its folder's ``calib.py``, found by the model's ``family`` attribute.

AWQ scales: when every targeted consumer of a normalisation layer (a group with ``norm`` set)
uses the same AWQ rule, one scale is searched for them jointly and folded into that layer's
weight and bias (the model's LayerNorm changes: exporters must take non-Linear parameters from
the quantized model, not from the source checkpoint). Elsewhere (attention output projection,
fc2, cross-attention keys/values) the scale stays on the Linear as ``QuantizedWeight.input_scale``,
a multiply every reader applies.

Refinements (a rule's ``refine``, see quant/refine.py): for a block whose Linears a rule refines
block by block, the statistics pass also records the float block's outputs, and the block is
trained to match them once its start algorithm has quantized it, before its outputs feed the
next block; refinements end to end train after every block, on the float model's next-token
distributions computed before anything was quantized, the refined tables with them.

Float inputs (GPTQ's ``float_inputs``, algorithms/gptq.py): when a rule asks for them, a float
copy of the model runs through its own adapter in step with the model. Such a group's statistics
are measured anew just before it is quantized, the block's earlier groups already quantized (so
a correction made by the queries is not made again by the output projection), sample by sample
(``CalibBlock.run_one`` of both models, each pass stopped once the group's input is read): X^T X
and (X~ - X)^T X, X~ the float copy's input to the group's Linears on the same tokens. Families
whose adapter has no ``run_one`` get no cross term, and GPTQ refuses the option.

Embedding tables (a recipe's ``[embedding]``) are rounded to nearest before the loop, so the
decoder blocks are calibrated on the lookups they will get. A tied table is also the output
projection (logits = final norm's output @ table^T); with ``algorithm = "gptq"`` it is quantized
again, from its float values, when the adapter yields that projection as a last block: a group
naming the table, whose inputs are recorded from its ``norm``'s output (the quantized decoder's
final hidden states), since a lookup reads token ids, not that tensor.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from .. import families
from ..cpu import describe_cpu
from ..errors import AsrQuantError
from ..progress import bar as progress_bar
from ..progress import track
from .algorithms import get_algorithm
from .algorithms.rtn import rtn
from .linear import QuantEmbedding, QuantLinear
from .qtensor import QuantizedWeight, dequantize, effective_weight
from .recipe import Recipe, Rule
from .refine import BlockRecorder, FreeRunCheck, Item, e2e_check, float_teacher, refine_block, refine_end_to_end
from .scheme import bits_per_weight
from .threads import one_cpu_thread

INT8_NOTE = "refined through the int8 chain"  # a refinement's losses are then the int8 artifact's


@dataclass
class CalibSample:
    """One calibration clip: its log-mel and the decoder tokens (prompt + reference + end)."""

    mel: np.ndarray  # float32 [n_mels, frames]
    tokens: np.ndarray  # int64 [T]
    # How many leading tokens are the prompt: what a free-running check (dwq's check = "greedy")
    # feeds before the model generates. 0: not known, so no such check can run on the sample.
    prompt: int = 0


@dataclass
class Calibration:
    """Which clips calibrated a model: recorded with it so a bench can warn when they are evaluated on."""

    manifest: str
    ids: list[str]
    audio_sha256: list[str]

    def to_dict(self) -> dict:
        return {"manifest": self.manifest, "ids": self.ids, "audio_sha256": self.audio_sha256}


def single_language_warning(manifest, langs: list[str | None]) -> str | None:
    """The warning line for a multilingual model calibrated on clips of one language (the chosen
    clips' manifest ``lang`` fields), or None. GPTQ's statistics, a refinement's targets and the
    sensitivities all come from these clips: English-only clips have been measured to nearly
    double the errors of a quantized model on Chinese speech."""
    known = {lang for lang in langs if lang}
    if len(known) > 1 or not langs:
        return None
    which = f"every calibration clip is {next(iter(known))!r}" if known else "no calibration clip has a 'lang' field"
    return (f"asrquant: warning: {manifest}: {which}; a multilingual model quantized on one language "
            f"loses more on the others: calibrate on clips of every language it will hear")


def warn_single_language(manifest, langs: list[str | None]) -> None:
    line = single_language_warning(manifest, langs)
    if line:
        print(line, file=sys.stderr)


def spread(n_items: int, n: int) -> list[int]:
    """``n`` indices spread evenly over ``n_items`` (every category of a sorted manifest is seen)."""
    if n >= n_items:
        return list(range(n_items))
    return sorted({int(i) for i in np.linspace(0, n_items - 1, n).round()})


@dataclass
class InputGroup:
    """Linears (full module names) that read one and the same tensor.

    ``norm`` names the module that produced it when these Linears are all of its consumers; AWQ
    scales can then be folded into its ``weight`` (and ``bias``). A tied embedding table may stand
    alone in ``linears`` for its output projection; ``norm`` then names what it multiplies.
    """

    linears: list[str]
    norm: str | None = None


@dataclass
class CalibBlock:
    name: str
    run: Callable[[], None]  # runs the block over every calibration input (outputs unused)
    groups: list[InputGroup]
    # Optional, for refinements: (i, positions) -> the block's output for the i-th calibration
    # sample alone (samples in the order of the rows of run's calls), with gradients; at
    # ``positions`` only (a sorted index tensor of its sequence axis) when not None and the block
    # can compute them alone. Lets a refinement step on one sample instead of a whole run.
    run_one: Callable[[int, Tensor | None], object] | None = None


class BlockAdapter(Protocol):
    def blocks(self) -> Iterator[CalibBlock]:
        """Yield the blocks in execution order. On resuming after a yield, the block's Linears
        may have been replaced by QuantLinears: compute the block's outputs then, with the
        quantized block, as the next block's inputs. Keep one block's inputs at a time."""


def make_adapter(model: nn.Module, samples: list[CalibSample], device, batch_size: int) -> BlockAdapter:
    """The calibration adapter of the model's family (its ``family`` attribute names it)."""
    family = getattr(model, "family", None)
    if family is None:
        raise AsrQuantError(f"no calibration adapter for {type(model).__name__}: give quantize_model an adapter, or "
                            "give the model a `family` attribute naming its folder in asrquant.families")
    return families.module(family, "calib").CalibAdapter(model, samples, device=device, batch_size=batch_size)


# --- the report ----------------------------------------------------------------------------------

EMBEDDING_NOTE = "embedding table"


@dataclass
class LayerReport:
    name: str
    scheme: str
    algorithm: str
    bits_per_weight: float
    params: int
    rel_output_error: float | None  # ||X W^T - X Wq^T|| / ||X W^T|| on the calibration inputs
    rel_weight_error: float  # ||W - Wq|| / ||W||
    seconds: float
    note: str = ""
    # A refinement's loss on the calibration clips before and after it trained, by level:
    # "block" (relative squared error of the block's outputs), "e2e" (KL per position).
    refine_loss: dict = field(default_factory=dict)


@dataclass
class QuantReport:
    recipe: str
    layers: list[LayerReport] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # Linears left in float (ignored or no rule)
    n_samples: int = 0
    n_tokens: dict = field(default_factory=dict)  # calibration tokens seen per block kind
    seconds: float = 0.0
    forward_seconds: float = 0.0  # of which: running blocks and collecting statistics
    refine_seconds: float = 0.0  # of which: training refinements
    device: str = "cpu"
    # What the tensors' last bits depend on besides the recipe and the clips: the processor's
    # kernels, torch's, and for a learned refinement the thread count (its training's sums
    # follow the threads; GPTQ's statistics are summed in one order at any thread count).
    build: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def quantized_params(self) -> int:
        return sum(l.params for l in self.layers)

    @property
    def mean_bits_per_weight(self) -> float:
        p = self.quantized_params
        return sum(l.bits_per_weight * l.params for l in self.layers) / p if p else 0.0

    @property
    def mean_rel_output_error(self) -> float | None:
        errs = [l.rel_output_error for l in self.layers if l.rel_output_error is not None]
        return float(np.mean(errs)) if errs else None

    def to_dict(self) -> dict:
        return {
            "recipe": self.recipe,
            "n_samples": self.n_samples,
            "n_tokens": self.n_tokens,
            "device": self.device,
            "build": dict(self.build),
            "seconds": round(self.seconds, 3),
            "forward_seconds": round(self.forward_seconds, 3),
            "refine_seconds": round(self.refine_seconds, 3),
            "quantized_layers": len(self.layers),
            "quantized_params": self.quantized_params,
            "mean_bits_per_weight": round(self.mean_bits_per_weight, 4),
            "mean_rel_output_error": self.mean_rel_output_error,
            "kept": list(self.kept),
            "notes": list(self.notes),
            "layers": [asdict(l) for l in self.layers],
        }

    def what_quantized(self) -> str:
        tables = sum(l.note == EMBEDDING_NOTE for l in self.layers)
        return f"{len(self.layers) - tables} Linears" + (f" + {tables} embedding table" if tables else "")

    def to_markdown(self) -> str:
        fmt = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731
        refined = any(l.refine_loss for l in self.layers)
        loss = lambda l: "; ".join(f"{k} {b:.4g} → {a:.4g}" for k, (b, a) in l.refine_loss.items())  # noqa: E731
        lines = [
            f"### Quantization report: `{self.recipe}`",
            "",
            f"{len(self.layers)} weights quantized ({self.what_quantized()}; {self.quantized_params:,} elements, "
            f"{self.mean_bits_per_weight:.3f} bits/weight on average), {len(self.kept)} kept in float; "
            f"{self.n_samples} calibration clips; {self.seconds:.1f} s on {self.device} "
            f"({self.forward_seconds:.1f} s running blocks"
            + (f", {self.refine_seconds:.1f} s refining" if refined else "") + ").",
            *([f"Built with {self.build['threads']} threads on {self.build['processor']}, torch "
               f"{self.build['torch']} (the same recipe and clips give the same bytes on the same processor and "
               "torch; a refined build also needs the same thread count).", ""]
              if self.build else [""]),
            "| layer | scheme | algorithm | bits/weight | rel. output error | rel. weight error | s | note |"
            + (" refinement loss before → after |" if refined else ""),
            "|---|---|---|---:|---:|---:|---:|---|" + ("---|" if refined else ""),
        ]
        for l in self.layers:
            lines.append(
                f"| {l.name} | {l.scheme} | {l.algorithm} | {l.bits_per_weight:.3f} | {fmt(l.rel_output_error)} "
                f"| {l.rel_weight_error:.4f} | {l.seconds:.2f} | {l.note} |" + (f" {loss(l)} |" if refined else "")
            )
        mean = self.mean_rel_output_error
        lines.append(f"| **total** | | | {self.mean_bits_per_weight:.3f} | {fmt(mean)} (mean) "
                     f"| | {self.seconds:.1f} | |" + (" |" if refined else ""))
        if self.kept:
            lines += ["", "Kept in float: " + ", ".join(f"`{k}`" for k in self.kept)]
        for n in self.notes:
            lines += ["", f"Note: {n}"]
        return "\n".join(lines) + "\n"


# --- statistics -----------------------------------------------------------------------------------


class _Stats:
    """X^T X and sum |x| over the rows of one input tensor seen by a group of Linears."""

    def __init__(self, n: int, device):
        self.h = torch.zeros(n, n, dtype=torch.float64, device=device)
        self.abs_sum = torch.zeros(n, dtype=torch.float64, device=device)
        self.rows = 0
        self.last: Tensor | None = None
        self.records = 0
        self.calls: dict[str, int] = {}
        self.c: Tensor | None = None  # (X~ - X)^T X, where a rule quantizes against float inputs

    def add_with_float(self, x_float: Tensor, x: Tensor) -> None:
        """``add(x)`` and (x~ - x)^T x of the same rows, x~ the float model's input on the same
        tokens (float_inputs): every row of C is a row of H, so both share ``rows``."""
        self.add(x)
        x2 = x.detach().reshape(-1, x.shape[-1]).float()
        d2 = x_float.detach().reshape(-1, x.shape[-1]).float() - x2
        if self.c is None:
            self.c = torch.zeros_like(self.h)
        with one_cpu_thread(x2.device):  # one summation order at any thread count, as H's
            self.c += (d2.T @ x2).double()

    @property
    def cross(self) -> Tensor | None:
        return None if self.c is None else (self.c / max(self.rows, 1)).float()

    def add(self, x: Tensor) -> None:
        x2 = x.detach().reshape(-1, x.shape[-1]).float()
        # On one thread: a multi-threaded GEMM splits a long sum (thousands of frames) by the
        # thread count, its last bits follow, and GPTQ's roundings follow those bits; one fixed
        # order gives the same Hessian, so the same build, at any --threads.
        with one_cpu_thread(x2.device):
            self.h += (x2.T @ x2).double()
        self.abs_sum += x2.abs().sum(0).double()
        self.rows += x2.shape[0]

    @property
    def mean_abs(self) -> Tensor:
        return (self.abs_sum / max(self.rows, 1)).float()

    @property
    def hessian(self) -> Tensor:
        return (self.h / max(self.rows, 1)).float()


def _is_table(model: nn.Module, name: str) -> bool:
    return isinstance(model.get_submodule(name), (nn.Embedding, QuantEmbedding))


def _input_dim(module: nn.Module) -> int:
    return module.embedding_dim if isinstance(module, (nn.Embedding, QuantEmbedding)) else module.in_features


def _hook_group(model: nn.Module, group: InputGroup, stats: _Stats) -> list:
    """Pre-hooks on every Linear of a group: a tensor is recorded once, by whichever reads it first.

    Each Linear counts its calls; :func:`_check_group` then verifies that every Linear read
    exactly the recorded tensors (an adapter that grouped Linears with different inputs fails).
    A tied table's projection is recorded from its ``norm``'s output instead.
    """
    names = group.linears
    if any(_is_table(model, n) for n in names):
        if len(names) != 1 or group.norm is None:
            raise RuntimeError(f"calibration adapter error: a table's output projection is a group of its own "
                               f"with the module it multiplies as norm, not {group}")

        def out_hook(_m, _args, out, n=names[0]):
            stats.calls[n] = stats.calls.get(n, 0) + 1
            stats.records += 1
            stats.add(out)
        return [model.get_submodule(group.norm).register_forward_hook(out_hook)]
    handles = []
    for n in names:
        def hook(_m, args, n=n):
            stats.calls[n] = stats.calls.get(n, 0) + 1
            if args[0] is not stats.last:
                stats.last = args[0]
                stats.records += 1
                stats.add(args[0])
        handles.append(model.get_submodule(n).register_forward_pre_hook(hook))
    return handles


def _check_group(names: list[str], stats: _Stats) -> None:
    bad = [n for n in names if stats.calls.get(n, 0) != stats.records]
    if bad:
        raise RuntimeError(f"calibration adapter error: {', '.join(bad)} do not read the same inputs as {names}")


def _group_input_hooks(model: nn.Module, groups: dict[int, InputGroup],
                       on_input: Callable[[int, Tensor], None]) -> list:
    """Hooks calling ``on_input(i, x)`` with the tensor group ``i``'s Linears read (a tied table's
    projection: its ``norm``'s output), at every read; the caller keeps the first of a call."""
    handles = []
    for i, g in groups.items():
        if any(_is_table(model, n) for n in g.linears):
            handles.append(model.get_submodule(g.norm).register_forward_hook(
                lambda _m, _a, out, i=i: on_input(i, out)))
            continue
        for n in g.linears:
            handles.append(model.get_submodule(n).register_forward_pre_hook(lambda _m, args, i=i: on_input(i, args[0])))
    return handles


class _Seen(Exception):
    """Raised from a hook once every group's input of a pass is recorded: the rest of the block
    would only cost time (a fc1's input is there before the MLP runs)."""


def _inputs_of(model: nn.Module, block: CalibBlock, j: int, groups: dict[int, InputGroup]) -> dict[int, Tensor]:
    """The tensor each group's Linears read when ``block`` runs sample ``j`` alone (``run_one``)."""
    got: dict[int, Tensor] = {}

    def keep(i, x):
        got.setdefault(i, x)
        if len(got) == len(groups):
            raise _Seen

    handles = _group_input_hooks(model, groups, keep)
    try:
        block.run_one(j, None)
    except _Seen:
        pass
    finally:
        for h in handles:
            h.remove()
    if len(got) != len(groups):
        raise RuntimeError(f"calibration adapter error: {block.name}'s run_one({j}) did not read the inputs of "
                           f"{[g.linears for i, g in groups.items() if i not in got]}")
    return got


def _cross_pass(model: nn.Module, twin: nn.Module, block: CalibBlock, twin_block: CalibBlock,
                groups: dict[int, InputGroup], stats: dict[int, _Stats], n_samples: int) -> None:
    """For each group, X^T X and (X~ - X)^T X: this model's input to its Linears against the float
    model's (``twin``, never quantized, run to the same block), sample by sample (``run_one``)."""
    for j in range(n_samples):
        floats = _inputs_of(twin, twin_block, j, groups)
        for i, x in _inputs_of(model, block, j, groups).items():
            stats[i].add_with_float(floats[i], x)


# --- quantizing --------------------------------------------------------------------------------


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def _rel_errors(w: Tensor, wq: Tensor, h: Tensor | None) -> tuple[float | None, float]:
    d = w - wq
    werr = (d.norm() / w.norm().clamp(min=1e-30)).item()
    if h is None:
        return None, werr
    num = torch.sum((d @ h) * d).clamp(min=0)
    den = torch.sum((w @ h) * w).clamp(min=1e-30)
    return torch.sqrt(num / den).item(), werr


def _quantize_one(w: Tensor, rule: Rule, stats: _Stats | None, device) -> QuantizedWeight:
    algo = get_algorithm(rule.algorithm)
    if algo.needs_stats and stats is None:
        raise AsrQuantError(f"algorithm {rule.algorithm} needs calibration data")
    return algo.quantize(w, rule.scheme, stats, device, **rule.all_options())


class _Quantizer:
    def __init__(self, model: nn.Module, recipe: Recipe, report: QuantReport, device, fold_awq: bool):
        self.model, self.recipe, self.report, self.device, self.fold_awq = model, recipe, report, device, fold_awq
        self.done: set[str] = set()
        self.tables: dict[str, tuple[Tensor, Rule]] = {}  # GPTQ tables waiting for their projection's inputs
        self.float_weights: dict[str, Tensor] = {}  # of the Linears a refinement starts from

    def wants(self, name: str) -> bool:
        return name in self.tables or (name not in self.done and self.recipe.rule_for(name) is not None
                                       and not _is_table(self.model, name))

    def replace(self, name: str, qw: QuantizedWeight, rule: Rule, stats: _Stats | None, seconds: float,
                note: str = "", w_eff: Tensor | None = None) -> None:
        lin = self.model.get_submodule(name)
        w = lin.weight.detach().float()
        h = None if stats is None else stats.hessian.to(w.device)
        wq = (w_eff if w_eff is not None else effective_weight(qw)).to(w.device)
        oerr, werr = _rel_errors(w, wq, h)
        _set_module(self.model, name, QuantLinear.from_linear(lin, qw))
        self.done.add(name)
        info = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in qw.info.items()
                         if k != "scale_search_loss")
        self.report.layers.append(LayerReport(
            name, rule.scheme.name, rule.algorithm, bits_per_weight(rule.scheme, qw.in_features),
            qw.codes.numel(), oerr, werr, seconds, "; ".join(x for x in (note, info) if x),
        ))

    def single(self, name: str, rule: Rule, stats: _Stats | None) -> None:
        t = time.perf_counter()
        qw = _quantize_one(self.model.get_submodule(name).weight.detach().float(), rule, stats, self.device)
        self.replace(name, qw, rule, stats, time.perf_counter() - t)

    def table(self, name: str, stats: _Stats | None) -> None:
        """Quantize a waiting table by its rule on its projection's inputs (``stats``), or leave it rounded."""
        w, rule = self.tables.pop(name)
        t = time.perf_counter()
        if stats is None:
            qw, algo = self.model.get_submodule(name).qweight, "rtn"
        else:
            qw, algo = _quantize_one(w, rule, stats, self.device), rule.algorithm
            dev = self.model.get_submodule(name).weight.device
            _set_module(self.model, name, QuantEmbedding(qw).to(dev))
        _report_table(self.report, name, rule, algo, w, qw, None if stats is None else stats.hessian, t)

    def group(self, group: InputGroup, stats: _Stats | None) -> None:
        if group.linears[0] in self.tables:
            self.table(group.linears[0], stats)
            return
        rules = {n: self.recipe.rule_for(n) for n in group.linears}
        targeted = [n for n, r in rules.items() if r is not None]
        first = rules[targeted[0]] if targeted else None
        if (
            self.fold_awq and stats is not None and group.norm is not None and first is not None
            and get_algorithm(first.algorithm).folds_into_norm and all(rules[n] is first for n in targeted)
            and self._foldable(group.norm)
        ):
            self.awq_folded(group, targeted, first, stats)
            return
        for n in targeted:
            self.single(n, rules[n], stats)

    def rule_of(self, name: str) -> Rule | None:
        """The rule of a Linear, or of a table (its ``[embedding]`` rule)."""
        if _is_table(self.model, name):
            return self.recipe.embedding_rule_for(name)
        return self.recipe.rule_for(name)

    def refined(self, kept: dict[str, QuantizedWeight], level: str, before: float, after: float,
                names: list[str], hessians: dict[str, Tensor | None]) -> None:
        """Report a refinement: the loss on every refined layer, and its errors anew where it was kept."""
        rows = {l.name: l for l in self.report.layers}
        for n in names:
            row = rows[n]
            row.refine_loss[level] = [before, after]
            rule = self.rule_of(n)
            if get_algorithm(rule.refine).int8_chain(rule.all_refine_options()) and INT8_NOTE not in row.note:
                row.note = "; ".join(x for x in (row.note, INT8_NOTE) if x)  # its losses are the int8 chain's
            if n in kept:
                suffix = f"+{rule.refine}"
                row.algorithm += "" if row.algorithm.endswith(suffix) else suffix
                w = self.float_weights.get(n)
                if w is not None:
                    h = hessians.get(n)
                    row.rel_output_error, row.rel_weight_error = _rel_errors(
                        w, effective_weight(kept[n]).to(w.device), None if h is None else h.to(w.device))

    def _foldable(self, norm: str) -> bool:
        m = self.model.get_submodule(norm)
        return isinstance(getattr(m, "weight", None), Tensor)

    def awq_folded(self, group: InputGroup, targeted: list[str], rule: Rule, stats: _Stats) -> None:
        """One scale for all consumers of ``group.norm``, searched jointly and folded into it."""
        t = time.perf_counter()
        algo = get_algorithm(rule.algorithm)
        ws = [self.model.get_submodule(n).weight.detach().float() for n in targeted]
        s, ratios, info = algo.search(torch.cat(ws), rule.scheme, stats, self.device, **rule.all_options())
        seconds = (time.perf_counter() - t) / len(targeted)
        norm = self.model.get_submodule(group.norm)
        with torch.no_grad():
            sd = s.to(norm.weight.device, norm.weight.dtype)
            norm.weight.div_(sd)
            if getattr(norm, "bias", None) is not None:
                norm.bias.div_(sd)
            for n in group.linears:  # untargeted consumers stay float and absorb the scale exactly
                if n not in targeted and isinstance(self.model.get_submodule(n), nn.Linear):
                    self.model.get_submodule(n).weight.mul_(sd[None, :])
        row = 0
        for n, w in zip(targeted, ws):
            t = time.perf_counter()
            r = None if ratios is None else ratios[row : row + w.shape[0]]
            row += w.shape[0]
            qw = algo.apply(w.cpu(), s, r, rule.scheme, info)
            qw.input_scale = None  # folded into the norm
            qw.info["folded_into"] = group.norm
            w_eff = dequantize(qw) / s[None, :]
            self.replace(n, qw, rule, stats, seconds + time.perf_counter() - t, w_eff=w_eff)


def _refined_by(recipe: Recipe, names, level: str) -> list[str]:
    return [n for n in names if (r := recipe.rule_for(n)) is not None and level in r.refine_levels()]


def _tables_refined(model: nn.Module, recipe: Recipe) -> list[str]:
    """The embedding tables whose ``[embedding]`` rule refines them (end to end: see quant.recipe)."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Embedding)
            and (r := recipe.embedding_rule_for(n)) is not None and "e2e" in r.refine_levels()]


def _linear_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def build_environment(device: torch.device) -> dict:
    """The quantization report's ``build``: intra-op threads, the processor (the CPU's model and
    instruction sets, or the GPU's name) and torch's version."""
    chip = torch.cuda.get_device_name(device) if device.type == "cuda" else describe_cpu()
    return {"threads": torch.get_num_threads(), "processor": chip, "torch": torch.__version__}


def check_recipe_fits(model: nn.Module, recipe: Recipe) -> None:
    """Before any work: every rule that names modules hits one, something is quantized at all
    (else a float model would be saved as "quantized"), and every group divides the input width
    it groups (a partial group costs bits and no exporter can pack it)."""
    where = recipe.source or f"recipe {recipe.name!r}"
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    live = [n for n in linears if not recipe.is_ignored(n)]
    for i, rule in enumerate(recipe.rules):
        if (rule.match or rule.kinds) and not any(rule.matches(n) for n in live):
            field = "match" if rule.match else "kind"
            named = list(rule.match) if rule.match else list(rule.kinds)
            raise AsrQuantError(f"{where}: rules[{i}].{field}: {named} matches no Linear of the model "
                                f"(names look like {', '.join(live[:3])})")
    tables = {n: m for n, m in model.named_modules() if isinstance(m, nn.Embedding)}
    emb = recipe.embedding
    if emb is not None and emb.match and not any(recipe.embedding_rule_for(n) for n in tables):
        raise AsrQuantError(f"{where}: embedding.match: {list(emb.match)} matches no embedding table of the model "
                            f"(tables: {', '.join(tables) or 'none'})")
    targeted = [n for n in live if recipe.rule_for(n) is not None]
    if not targeted and not any(recipe.embedding_rule_for(n) for n in tables):
        raise AsrQuantError(f"{where}: quantizes no module of the model (every Linear is ignored or unmatched)")
    for n in targeted:
        rule = recipe.rule_for(n)
        _check_group_divides(where, f"rules[{recipe.rules.index(rule)}].group_size", rule, n, linears[n].in_features)
    for n, m in tables.items():
        rule = recipe.embedding_rule_for(n)
        if rule is not None:
            _check_group_divides(where, "embedding.group_size", rule, n, m.embedding_dim)


def _check_group_divides(where: str, field: str, rule: Rule, module: str, width: int) -> None:
    group = rule.scheme.group_size
    if group > 0 and width % group:
        raise AsrQuantError(f"{where}: {field}: {group} does not divide the input width {width} of {module}")


def quantize_model(
    model: nn.Module,
    recipe: Recipe,
    samples: list[CalibSample] | None = None,
    progress: bool = True,
    *,
    device: str | torch.device | None = None,
    batch_size: int = 4,
    fold_awq: bool = True,
    adapter: BlockAdapter | None = None,
) -> QuantReport:
    """Replace the recipe's targeted ``nn.Linear``s by :class:`QuantLinear`s in place.

    With ``samples`` the model is streamed block by block (see the module doc) and the report
    has output errors on them; recipes that only use RTN need none. The recipe's
    ``calibration.clips`` caps the samples used. ``device`` defaults to CUDA when present; the
    model is returned to its own device afterwards. ``fold_awq=False`` keeps every AWQ scale
    as the Linear's ``input_scale`` instead of folding shared ones into LayerNorms. ``adapter``
    overrides the model family's calibration adapter (``models/<family>/calib.py``).
    """
    t0 = time.perf_counter()
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report = QuantReport(recipe=recipe.name, device=str(dev), build=build_environment(dev))
    check_recipe_fits(model, recipe)
    names = _linear_names(model)
    targeted = [n for n in names if recipe.rule_for(n) is not None]
    report.kept = [n for n in names if n not in targeted]
    if recipe.needs_calibration and not samples:
        raise AsrQuantError(f"recipe {recipe.name!r} needs calibration clips ({recipe.clips}); none were given")
    if samples and recipe.clips and len(samples) > recipe.clips:
        samples = samples[: recipe.clips]
    if samples and recipe.clips and len(samples) < recipe.clips:
        report.notes.append(f"the recipe asks for {recipe.clips} calibration clips; {len(samples)} were given")

    try:
        orig_device = next(model.parameters()).device
    except StopIteration:
        orig_device = torch.device("cpu")
    was_training = model.training
    model.eval()
    q = _Quantizer(model, recipe, report, dev, fold_awq)
    e2e = (_refined_by(recipe, targeted, "e2e") + _tables_refined(model, recipe)) if samples else []
    try:
        teacher, logits, free_run = None, None, None
        if e2e:  # the float model's distributions (and greedy tokens), before anything is quantized
            model.to(dev)
            logits = _logits_fn(model, samples, dev)
            check, check_clips = e2e_check([q.rule_of(n) for n in e2e])
            free_run = _free_run_fn(model, samples, recipe) if check == "greedy" else None
            teacher = float_teacher(logits, len(samples), check_clips, free_run)
            q.float_weights.update({n: model.get_submodule(n).weight.detach().float().clone() for n in e2e})
        twin = None
        if samples and _wants_float_inputs(recipe):  # the float model, run beside it (algorithms.gptq)
            if adapter is not None:
                raise AsrQuantError(f"recipe {recipe.name!r}: float_inputs needs the family's own calibration "
                                    "adapter (a float copy of the model runs through it), not a given one")
            model.to(dev)
            twin = copy.deepcopy(model)
            twin = _Twin(twin, make_adapter(twin, samples, dev, batch_size).blocks(), len(samples))
        # Before calibration, so the decoder blocks are calibrated on the rows they will be fed.
        q.tables = _quantize_embeddings(model, recipe, report)
        if samples:
            model.to(dev)
            report.n_samples = len(samples)
            ad = adapter if adapter is not None else make_adapter(model, samples, dev, batch_size)
            _stream(model, ad, q, report, progress, len(targeted) + len(q.tables), twin)
            twin = None  # the float copy and its blocks' inputs, not needed by what follows
        for n in list(q.tables):
            report.notes.append(f"the calibration adapter has no output projection of {n}; it stays rounded to nearest")
            q.table(n, None)
        leftover = [n for n in targeted if n not in q.done]
        if leftover and samples:
            report.notes.append("no calibration data reached " + ", ".join(leftover) + "; quantized by RTN")
        for n in track(leftover, progress, "quantizing"):
            rule = recipe.rule_for(n)
            if rule.algorithm != "rtn":
                rule = Rule(rule.scheme, "rtn", rule.match, rule.kinds)
            q.single(n, rule, None)
        if e2e:
            _refine_e2e(model, q, [n for n in e2e if n in q.done or _is_table(model, n)], logits, teacher, progress,
                        free_run)
    finally:
        model.to(orig_device)
        model.train(was_training)
    report.seconds = time.perf_counter() - t0
    return report


def _logits_fn(model: nn.Module, samples: list[CalibSample], device) -> Callable[[int], Tensor]:
    """Sample index -> its teacher-forced logits [T, V] (with gradients), by the model's family."""
    fn = families.module(model.family, "calib").teacher_forced_logits
    return lambda i: fn(model, samples[i], device)


def _free_run_fn(model: nn.Module, samples: list[CalibSample], recipe: Recipe) -> Callable[[int], list[int]]:
    """Sample index -> the tokens the model as it is now generates greedily (a greedy check)."""
    fn = getattr(families.module(model.family, "calib"), "free_running_tokens", None)
    if fn is None:
        raise AsrQuantError(f"recipe {recipe.name!r}: check = \"greedy\" needs free-running decoding, which the "
                            f"{model.family} family's calibration does not have")
    if any(s.prompt < 1 for s in samples):
        raise AsrQuantError(f"recipe {recipe.name!r}: check = \"greedy\" needs calibration samples that say where "
                            f"their prompt ends (CalibSample.prompt), as the families' calibration_samples give them")
    return lambda i: fn(model, samples[i])


def _refine_e2e(model, q: _Quantizer, names: list[str], logits, teacher, progress: bool, free_run=None) -> None:
    if not names:
        return
    t = time.perf_counter()
    items = [Item(n, q.float_weights[n], q.rule_of(n)) for n in names]
    steps = max(it.rule.all_refine_options()["steps"] for it in items)
    with progress_bar("refine end to end", steps, progress) as advance:
        before, after, kept = refine_end_to_end(model, logits, teacher, items, advance, free_run)
    if isinstance(before, FreeRunCheck):  # the layers' losses stay KLs; the note says what chose
        trained, check = teacher.split()
        held = "" if set(check) & set(trained) else "held-out "
        q.report.notes.append(
            f"end-to-end checks decoded {len(check)} {held}clips greedily: disagreement with the float "
            f"model's tokens {before.disagreement:.2%} -> {after.disagreement:.2%} "
            f"(KL {before.kl:.4g} -> {after.kl:.4g})")
        before, after = before.kl, after.kl
    q.refined(kept, "e2e", before, after, names, {})
    q.report.refine_seconds += time.perf_counter() - t
    if not kept:
        q.report.notes.append(f"end-to-end refinement did not improve its check (KL {before:.4g}); the start is kept")


def _quantize_embeddings(model: nn.Module, recipe: Recipe, report: QuantReport) -> dict[str, tuple[Tensor, Rule]]:
    """Round the recipe's embedding tables to its ``[embedding]`` scheme (see quant.recipe).

    Returns the tables whose rule is GPTQ, with their float weights: rounded here, they are
    reported and replaced once their output projection's inputs are known (_Quantizer.table)."""
    waiting = {}
    tables = [(n, m, recipe.embedding_rule_for(n)) for n, m in model.named_modules() if isinstance(m, nn.Embedding)]
    tables = [(n, m, rule) for n, m, rule in tables if rule is not None]
    # A Linear holding the same Parameter (Qwen3-ASR's tied lm_head) would keep the float table and
    # lose the tie: a bigger model whose logits are not quantized. Only a projection that reads the
    # table itself (Whisper: x @ token_embedding.weight.T) follows it. Checked for every table
    # before any is replaced, so a refused model is left as it was.
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    for name, emb, _ in tables:
        tied = [n for n, m in linears if m.weight is emb.weight]
        if tied:
            raise AsrQuantError(f"recipe {recipe.name!r}: [embedding] matches {name}, which {', '.join(tied)} "
                                f"shares as its weight; quantizing a table tied to a Linear is not supported yet "
                                f"(drop [embedding], or match only untied tables)")
    for name, emb, rule in tables:
        t = time.perf_counter()
        w = emb.weight.detach().float()
        qw = rtn(w, rule.scheme)
        _set_module(model, name, QuantEmbedding.from_embedding(emb, qw))
        if rule.algorithm != "rtn":
            waiting[name] = (w.clone(), rule)
            continue
        _report_table(report, name, rule, "rtn", w, qw, None, t)
    return waiting


def _report_table(report: QuantReport, name: str, rule: Rule, algo: str, w: Tensor, qw: QuantizedWeight,
                  h: Tensor | None, started: float) -> None:
    """The report row of an embedding table (output error only where its projection's inputs are known)."""
    oerr, werr = _rel_errors(w, effective_weight(qw).to(w.device), None if h is None else h.to(w.device))
    report.layers.append(LayerReport(
        name, rule.scheme.name, algo, bits_per_weight(rule.scheme, qw.in_features), qw.codes.numel(), oerr, werr,
        time.perf_counter() - started, EMBEDDING_NOTE,
    ))


@dataclass
class _Twin:
    """A float copy of the model and its adapter's blocks, advanced in step with the model's own."""

    model: nn.Module
    blocks: Iterator[CalibBlock]
    n_samples: int


def _rule_wants_float_inputs(rule: Rule | None) -> bool:
    return rule is not None and get_algorithm(rule.algorithm).wants_float_inputs(rule.all_options())


def _wants_float_inputs(recipe: Recipe) -> bool:
    return any(_rule_wants_float_inputs(r) for r in (*recipe.rules, recipe.embedding))


def _stream(model, adapter: BlockAdapter, q: _Quantizer, report: QuantReport, progress: bool, n_targeted: int,
            twin: _Twin | None = None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    cols = (TextColumn("[bold]calibrate+quantize"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
            TimeElapsedColumn())
    with Progress(*cols, disable=not progress, transient=False) as bar:
        task = bar.add_task("", total=n_targeted)
        with torch.no_grad():
            blocks = iter(adapter.blocks())
            while True:
                t = time.perf_counter()
                block = next(blocks, None)  # the adapter runs the previous (quantized) block here
                twin_block = None
                if twin is not None:  # the float copy's same block (its generator runs its previous block here)
                    twin_block = next(twin.blocks, None)
                    names = (twin_block and twin_block.name, block and block.name)
                    if names[0] != names[1]:
                        raise RuntimeError(f"calibration adapter error: a float copy of the model yields {names[0]} "
                                           f"where the model yields {names[1]}")
                report.forward_seconds += time.perf_counter() - t
                if block is None:
                    break
                bar.update(task, description=block.name)
                groups = list(block.groups)
                grouped = {n for g in groups for n in g.linears}
                # Linears of the block the adapter did not group: each on its own.
                prefix = block.name + "."
                for n in _linear_names(model):
                    if n.startswith(prefix) and n not in grouped and n not in q.done:
                        groups.append(InputGroup([n]))
                active = [g for g in groups if any(q.wants(n) for n in g.linears)]
                refining = _refined_by(q.recipe, [n for g in active for n in g.linears if q.wants(n)], "block")
                recorder = BlockRecorder(model, block.name) if refining else None
                stats, handles = {}, []
                for i, g in enumerate(active):
                    first = model.get_submodule(g.linears[0])
                    stats[i] = _Stats(_input_dim(first), first.weight.device)
                    handles += _hook_group(model, g, stats[i])
                t = time.perf_counter()
                try:
                    if active:
                        if recorder is not None:
                            with recorder:
                                recorder.returned(block.run())
                        else:
                            block.run()
                finally:
                    for h in handles:
                        h.remove()
                report.forward_seconds += time.perf_counter() - t
                kind = block.name.split(".")[0]
                if active:
                    report.n_tokens[kind] = max(report.n_tokens.get(kind, 0), stats[0].rows)
                hessians = {}
                for n in refining:
                    q.float_weights[n] = model.get_submodule(n).weight.detach().float().clone()
                for i, g in enumerate(active):
                    stats[i].last = None
                    _check_group(g.linears, stats[i])
                    if (twin_block is not None and block.run_one is not None and twin_block.run_one is not None
                            and any(q.wants(n) and _rule_wants_float_inputs(q.rule_of(n)) for n in g.linears)):
                        # Measured anew, the block's groups before this one quantized: X is what this
                        # group will read, so an earlier group's correction is not made twice.
                        t = time.perf_counter()
                        stats[i] = _Stats(stats[i].h.shape[0], stats[i].h.device)
                        _cross_pass(model, twin.model, block, twin_block, {i: g}, stats, twin.n_samples)
                        report.forward_seconds += time.perf_counter() - t
                    n_wanted = sum(1 for n in g.linears if q.wants(n))
                    hessians.update({n: stats[i].hessian for n in g.linears if n in refining})
                    q.group(g, stats[i])
                    bar.update(task, advance=n_wanted)
                del stats
                if refining:
                    bar.update(task, description=f"{block.name} (refining)")
                    t = time.perf_counter()
                    items = [Item(n, q.float_weights[n], q.recipe.rule_for(n)) for n in refining]
                    before, after, kept = refine_block(model, block.run, recorder, items, run_one=block.run_one)
                    q.refined(kept, "block", before, after, refining, hessians)
                    for n in refining:  # kept for an end-to-end refinement after this one
                        if "e2e" not in q.recipe.rule_for(n).refine_levels():
                            q.float_weights.pop(n, None)
                    q.report.refine_seconds += time.perf_counter() - t
                    del recorder


def quantized_weights(model: nn.Module) -> dict[str, QuantizedWeight]:
    """Every QuantLinear's and QuantEmbedding's :class:`QuantizedWeight`, by module name."""
    return {n: m.qweight for n, m in model.named_modules() if isinstance(m, (QuantLinear, QuantEmbedding))}
