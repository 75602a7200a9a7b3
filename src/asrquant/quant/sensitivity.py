"""Sensitivity-driven mixed precision: ``asrquant recipe auto MODEL --calib M --budget 4.5bpw``.

Each Linear (and the token table, where the family can carry a quantized one) is quantized at
each candidate scheme, alone, every other tensor float, and the teacher-forced KL between the
float model's next-token distributions and that model's, at every position of the calibration
clips, is its cost at that scheme. Quantized how: rounded to nearest (``costs="rtn"``, one pass),
or by GPTQ as the recipe will quantize it (``costs="gptq"``): then each Linear's Hessian comes from
calibration clips other than the ones the KL is measured on, so a cost is GPTQ's error on clips
it did not fit (measured on the clips it fitted, GPTQ's costs would be optimistic, and most for
the decoder's Linears, whose few hundred token rows fit a 2048-wide Hessian poorly). The token
table's costs stay round-to-nearest either way: its GPTQ fits the hidden states of the output
projection, statistics this pass does not collect. Costs are then taken as additive (a first-order
prediction, as Model Optimizer's auto_quantize and mlx-lm's dynamic quantization assume), and a
scheme per tensor is chosen to minimise their sum under a budget of bits per weight (scales and
zero points included, over every tensor considered): start every tensor at the cheapest scheme,
then repeatedly take the upgrade that removes the most predicted KL per added bit while the
budget allows. The result is a plain recipe TOML, one rule per chosen scheme listing its tensors,
with each tensor's measured costs as comments; the chosen schemes are quantized by GPTQ (and
refined when asked) when the recipe is used.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import families
from ..errors import AsrQuantError
from ..progress import bar, track
from .algorithms.gptq import gptq
from .algorithms.rtn import fake_quantize
from .calibrate import CalibSample
from .qtensor import effective_weight
from .recipe import DEFAULT_IGNORE, Recipe, Rule, parse_recipe
from .refine import kl_per_position, teacher_log_probs
from .scheme import QuantScheme, bits_per_weight

# Candidates: 3 and 4 bits in groups of 64, 4 bits in groups of 32, 8 bits per channel; float16 scales.
CANDIDATES = (QuantScheme.int(3, 64, False, "float16"), QuantScheme.int(4, 64, False, "float16"),
              QuantScheme.int(4, 32, False, "float16"), QuantScheme.int(8, -1, False, "float16"))
GPTQ_ARGS = {"damp": 0.01, "block_size": 128, "act_order": True, "static_groups": True}  # the recipe's rules
GPTQ_OPTIONS = "{ " + ", ".join(f"{k} = {str(v).lower()}" for k, v in GPTQ_ARGS.items()) + " }"
TABLE_OPTIONS = "{ damp = 0.05 }"


@dataclass
class Tensor:
    name: str
    table: bool  # an nn.Embedding (the token table), else a Linear
    shape: tuple[int, int]
    kl: dict[str, float] = field(default_factory=dict)  # scheme name -> KL per position when alone

    @property
    def params(self) -> int:
        return self.shape[0] * self.shape[1]

    def bits(self, scheme: QuantScheme) -> float:
        return bits_per_weight(scheme, self.shape[1]) * self.params


def _tables_allowed(model: nn.Module, name: str) -> bool:
    probe = Recipe("probe", (Rule(CANDIDATES[0]),), embedding=Rule(CANDIDATES[0], match=(name,)))
    try:
        families.module(model.family, "calib").check_recipe(probe)
    except AsrQuantError:
        return False
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return not any(m.weight is model.get_submodule(name).weight for m in linears)


def candidates_of(model: nn.Module) -> list[Tensor]:
    """The tensors a recipe can quantize: Linears outside the default ignore list, token tables."""
    out = []
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear) and not any(fnmatch.fnmatchcase(n, p) for p in DEFAULT_IGNORE):
            out.append(Tensor(n, False, tuple(m.weight.shape)))
        elif isinstance(m, nn.Embedding) and _tables_allowed(model, n):
            out.append(Tensor(n, True, tuple(m.weight.shape)))
    return out


def measure(model: nn.Module, samples: list[CalibSample], schemes=CANDIDATES, progress: bool = True,
            device=None, hessian_samples: list[CalibSample] | None = None) -> list[Tensor]:
    """Every candidate tensor's KL per position at every scheme, quantized alone: rounded to
    nearest, or with ``hessian_samples`` (clips not in ``samples``) by GPTQ on their Hessians."""
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    orig = next(model.parameters()).device
    model.eval().to(dev)
    cal = families.module(model.family, "calib")
    logits = lambda i: cal.teacher_forced_logits(model, samples[i], dev)  # noqa: E731
    tensors = candidates_of(model)
    try:
        teacher = teacher_log_probs(logits, len(samples))
        after_encoder = _after_encoder(model, cal, samples, dev)
        hessians = None
        if hessian_samples is not None:
            linears = [t.name for t in tensors if not t.table]
            hessians = input_hessians(model, cal, hessian_samples, linears, dev, progress)
        with torch.no_grad(), bar("sensitivity", len(tensors) * len(schemes), progress) as advance:
            for t in tensors:
                w = model.get_submodule(t.name).weight
                keep = w.detach().clone()
                fn = logits if after_encoder is None or t.name.startswith(cal.ENCODER_PREFIX) else after_encoder
                for s in schemes:
                    if hessians is not None and not t.table:
                        q = effective_weight(gptq(keep, hessians[t.name], s, device=dev, **GPTQ_ARGS))
                    else:
                        q = fake_quantize(keep, s)
                    w.copy_(q.to(w.dtype))
                    t.kl[s.name] = sum(kl_per_position(fn(i), teacher[i]).item()
                                       for i in range(len(samples))) / len(samples)
                    advance()
                w.copy_(keep)
    finally:
        model.to(orig)
    return tensors


def input_hessians(model: nn.Module, cal, samples: list[CalibSample], names: list[str], dev,
                   progress: bool = True) -> dict[str, torch.Tensor]:
    """X^T X of each Linear's inputs in the float model over ``samples``, teacher forced: what GPTQ
    weighs its rounding errors by. One per Linear, held together (the sum of in_features^2 x 4
    bytes: 0.3 GB for whisper-base)."""
    hessians: dict[str, torch.Tensor] = {}

    def hook(module, args, name):
        x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
        h = x.T @ x
        hessians[name] = h if name not in hessians else hessians[name] + h

    handles = [model.get_submodule(n).register_forward_pre_hook(lambda m, a, n=n: hook(m, a, n)) for n in names]
    try:
        with torch.no_grad():
            for s in track(samples, progress, "sensitivity: GPTQ statistics"):
                cal.teacher_forced_logits(model, s, dev)
    finally:
        for h in handles:
            h.remove()
    return hessians


def _after_encoder(model: nn.Module, cal, samples: list[CalibSample], dev):
    """Sample index -> logits from the float encoder's output computed once, where the family can
    split there (``encoder_features``): a tensor outside the encoder leaves that output unchanged,
    so re-encoding 30-s windows for each of them (most of the measurement's time) is not needed."""
    if not hasattr(cal, "encoder_features"):
        return None
    with torch.no_grad():
        feats = [cal.encoder_features(model, s, dev) for s in samples]
    return lambda i: cal.logits_from_features(model, samples[i], feats[i], dev)


def choose(tensors: list[Tensor], budget_bpw: float, schemes=CANDIDATES) -> dict[str, QuantScheme]:
    """A scheme per tensor minimising the summed KL with mean bits per weight <= ``budget_bpw``."""
    total = sum(t.params for t in tensors)
    by_bits = lambda t: sorted(schemes, key=t.bits)  # noqa: E731
    pick = {t.name: by_bits(t)[0] for t in tensors}
    used = sum(t.bits(pick[t.name]) for t in tensors)
    if used > budget_bpw * total + 1e-6:
        raise AsrQuantError(f"a budget of {budget_bpw} bits per weight is below the cheapest candidate scheme "
                            f"({used / total:.3f} bits per weight)")
    while True:
        best, best_gain = None, 0.0
        for t in tensors:
            cur = pick[t.name]
            for s in schemes:
                extra = t.bits(s) - t.bits(cur)
                gain = t.kl[cur.name] - t.kl[s.name]
                if extra > 0 and gain > 0 and used + extra <= budget_bpw * total + 1e-6 and gain / extra > best_gain:
                    best, best_gain = (t, s, extra), gain / extra
        if best is None:
            return pick
        t, s, extra = best
        pick[t.name], used = s, used + extra


def mean_bits(tensors: list[Tensor], pick: dict[str, QuantScheme]) -> float:
    return sum(t.bits(pick[t.name]) for t in tensors) / sum(t.params for t in tensors)


def _scheme_toml(s: QuantScheme) -> str:
    return (f'format = "int"\nbits = {s.bits}\ngroup_size = {s.group_size}\nsymmetric = {str(s.symmetric).lower()}\n'
            f'scale_dtype = "{s.scale_dtype}"\n')


def recipe_toml(tensors: list[Tensor], pick: dict[str, QuantScheme], budget_bpw: float, clips: int, command: str,
                refine: str | None = None, name: str | None = None, costs: str = "rtn") -> str:
    """The chosen schemes as a recipe a person can read and edit (parsed back before it is returned)."""
    name = name or f"auto-{budget_bpw:g}bpw"
    predicted = sum(t.kl[pick[t.name].name] for t in tensors)
    schemes = list(dict.fromkeys(pick[t.name] for t in tensors if not t.table))
    lines = [
        f'name = "{name}"',
        f'description = "chosen per tensor by measured sensitivity under {budget_bpw:g} bits per weight: '
        f'{mean_bits(tensors, pick):.3f} bits per weight, token table included"',
        "",
        f"# Made by: {command}",
        "# Cost of each tensor: the teacher-forced KL per position when only it is "
        + ("rounded to nearest at a" if costs == "rtn" else "quantized by GPTQ (Hessians from other calibration"),
        ("# scheme (calibration clips). " if costs == "rtn" else
         "# clips; the token table rounded to nearest) at a scheme (calibration clips). ")
        + f"Predicted total (the sum of the chosen costs): {predicted:.4g}.",
        "#   tensor: " + ", ".join(s.name for s in CANDIDATES if any(s.name in t.kl for t in tensors)),
    ]
    for t in tensors:
        costs = ", ".join(f"{v:.3g}" for v in t.kl.values())
        lines.append(f"#   {t.name}: {costs} -> {pick[t.name].name}")
    lines += ["", "[calibration]", f"clips = {clips}"]
    for s in schemes:
        names = [t.name for t in tensors if not t.table and pick[t.name] == s]
        lines += ["", "[[rules]]", "match = ["] + [f'  "{n}",' for n in names] + ["]"]
        lines += [_scheme_toml(s) + f'algorithm = "gptq"\noptions = {GPTQ_OPTIONS}']
        if refine:
            lines.append(f'refine = "{refine}"')
    for t in tensors:
        if t.table:
            lines += ["", "[embedding]", f'match = "{t.name}"', _scheme_toml(pick[t.name])
                      + f'algorithm = "gptq"\noptions = {TABLE_OPTIONS}']
    text = "\n".join(lines) + "\n"
    parse_recipe(text, source=name)
    return text


def parse_budget(text: str) -> float:
    t = text.strip().lower().removesuffix("bpw").strip()
    try:
        v = float(t)
    except ValueError:
        raise AsrQuantError(f"--budget {text!r}: give bits per weight, e.g. 4.5 or 4.5bpw") from None
    if not 2 <= v <= 16:
        raise AsrQuantError(f"--budget {text!r}: bits per weight between 2 and 16")
    return v


def cmd_recipe_auto(args) -> int:
    import shlex
    import sys

    torch.set_num_threads(args.threads)
    budget = parse_budget(args.budget)
    t0 = time.perf_counter()
    family = families.get(families.family_of(args.model))
    ckpt = family.module("load").load(args.model)
    calib = family.module("calib")
    samples, chosen = calib.calibration_samples(ckpt, args.calib, args.clips, not args.quiet)
    others = None
    if args.costs == "gptq":  # Hessians from the recipe's calibration clips that the KL is not measured on
        pool, pool_cal = calib.calibration_samples(ckpt, args.calib, args.recipe_clips, not args.quiet)
        others = [s for s, i in zip(pool, pool_cal.ids) if i not in set(chosen.ids)]
        if not others:
            raise AsrQuantError(f"--costs gptq: no calibration clip of {args.calib} is left for GPTQ's statistics "
                                f"beside the {args.clips} the costs are measured on "
                                f"(--recipe-clips {args.recipe_clips})")
    tensors = measure(ckpt.model, samples, progress=not args.quiet, hessian_samples=others)
    pick = choose(tensors, budget)
    command = "asrquant " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "recipe auto"
    text = recipe_toml(tensors, pick, budget, args.recipe_clips, command, args.refine, costs=args.costs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    counts: dict[str, int] = {}
    for s in pick.values():
        counts[s.name] = counts.get(s.name, 0) + 1
    print(f"wrote {out}: {mean_bits(tensors, pick):.3f} bits per weight over {len(tensors)} tensors "
          f"({', '.join(f'{n} x{c}' for n, c in counts.items())}); {len(samples)} clips measured in "
          f"{time.perf_counter() - t0:.1f} s")
    return 0
