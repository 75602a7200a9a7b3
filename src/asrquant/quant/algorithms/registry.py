"""Quantization algorithms by the name a recipe gives them.

An algorithm is one module of this package holding a subclass of :class:`Algorithm` decorated with
:func:`register`; recipes validate their ``algorithm`` and ``options`` against it and calibration
calls it, so neither changes when one is added. The modules are imported on the first lookup,
not when this one is: recipes are read on paths that must not import torch, and the algorithms'
math needs it.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from ...errors import AsrQuantError

if TYPE_CHECKING:
    from torch import Tensor

    from ..qtensor import QuantizedWeight
    from ..scheme import QuantScheme

# Imported first, so that listings (and recipe errors) start with the default, rtn; any other
# module of the package is found without being named here, and listed after them.
_LISTED_FIRST = ("rtn", "gptq", "awq")

_REGISTRY: dict[str, "Algorithm"] = {}
_loaded = False


class CalibStats(Protocol):
    """What calibration measured on the inputs X [tokens, in] of the weight being quantized."""

    @property
    def hessian(self) -> Tensor:
        """X^T X / tokens, float32 [in, in]."""

    @property
    def mean_abs(self) -> Tensor:
        """mean |x| per input channel, float32 [in]."""

    @property
    def cross(self) -> Tensor | None:
        """(X~ - X)^T X / tokens, float32 [in, in], X~ the float model's inputs on the same tokens;
        None unless a rule's algorithm :meth:`Algorithm.wants_float_inputs`."""


class Algorithm(ABC):
    """A quantization algorithm: what a recipe may say about it, and how it quantizes one weight."""

    name: str
    options: Mapping[str, tuple[type, Any]] = MappingProxyType({})  # option -> (type, default)
    needs_stats: bool = True  # calibration statistics; without them the weight is rounded to nearest
    quantizes_tables: bool = False  # may be a recipe's [embedding] algorithm
    folds_into_norm: bool = False  # a :class:`ScaleSearch`, whose scale a norm can absorb

    @abstractmethod
    def quantize(self, weight: Tensor, scheme: QuantScheme, stats: CalibStats | None, device,
                 **options) -> QuantizedWeight:
        """``weight`` [out, in] quantized by ``scheme``; ``options`` are all of :attr:`options`."""

    def wants_float_inputs(self, options: Mapping[str, Any]) -> bool:
        """Whether these options quantize against the float model's inputs: the calibration then
        runs a float copy of the model beside it and gives ``stats.cross`` (see algorithms.gptq)."""
        return False

    def option_problem(self, options: Mapping[str, Any], scheme: QuantScheme) -> tuple[str, str] | None:
        """(option, reason) when these options (all of them, defaults included) cannot work with
        ``scheme``, so a recipe is refused when read rather than when calibrated."""
        return None


class ScaleSearch(Algorithm):
    """AWQ-style: a per-input-channel scale s searched on the statistics, then ``weight * s``
    quantized, the input divided by s. Searching apart from quantizing lets the Linears that read
    one norm's output share one scale, searched on their concatenated weights and folded into
    that norm, so the division costs nothing at run time."""

    folds_into_norm = True

    @abstractmethod
    def search(self, weight: Tensor, scheme: QuantScheme, stats: CalibStats, device,
               **options) -> tuple[Tensor, Tensor | None, dict]:
        """(s [in], clip ratios [out, G] or None, what was found for the report)."""

    @abstractmethod
    def apply(self, weight: Tensor, s: Tensor, ratios: Tensor | None, scheme: QuantScheme,
              info: dict) -> QuantizedWeight:
        """``weight`` quantized with the scale and ``ratios`` rows found for it; ``input_scale`` = s."""

    def quantize(self, weight, scheme, stats, device, **options):
        s, ratios, info = self.search(weight, scheme, stats, device, **options)
        return self.apply(weight, s, ratios, scheme, info)


class Refinement(Algorithm):
    """A learned refinement of what another algorithm (a recipe rule's ``algorithm``, the start)
    quantized: a rule names it as ``refine``. Calibration trains it, block by block or end to
    end (``level``), after the start has quantized; its result is again a QuantizedWeight."""

    needs_stats = False
    starts: tuple[str, ...] = ("rtn", "gptq")  # the starts it can refine (their float weight is known)

    def quantize(self, weight, scheme, stats, device, **options):
        raise TypeError(f"{self.name} refines another algorithm's result: name it as a rule's refine")

    @abstractmethod
    def level(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        """Where it trains: ("block",), ("e2e",) or both, in that order."""

    @abstractmethod
    def learner(self, weight: Tensor, start: QuantizedWeight, **options):
        """An nn.Module whose call returns the learned dequantized weight [out, in] (differentiable),
        with ``clamp_()`` after each step and ``quantized()`` -> QuantizedWeight; ``weight`` is
        the float weight the start quantized into ``start``."""

    def int8_chain(self, options: Mapping[str, Any]) -> bool:
        """Whether the trained forward runs the Linear through the CPU export's int8 chain
        (``quant/int8_chain.py``) instead of multiplying float inputs by the learned weight."""
        return False

    @abstractmethod
    def optimiser(self, learned, total_steps: int, **options):
        """Its optimiser over ``total_steps`` steps: ``step()`` applies and clears the gradients."""


def register(cls: type[Algorithm]) -> type[Algorithm]:
    """Class decorator: makes ``cls()`` the algorithm named ``cls.name``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__qualname__} needs a name to be registered")
    if name in _REGISTRY and type(_REGISTRY[name]) is not cls:
        raise ValueError(f"algorithm {name!r} is already registered ({type(_REGISTRY[name]).__qualname__})")
    _REGISTRY[name] = cls()
    return cls


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def algorithm_names() -> tuple[str, ...]:
    """This package's algorithms, then those registered from elsewhere, each in registration order."""
    _load()
    ours = f"{__package__}."
    return tuple(sorted(_REGISTRY, key=lambda name: not type(_REGISTRY[name]).__module__.startswith(ours)))


def start_names() -> tuple[str, ...]:
    """The algorithms a rule may start from (every one but the refinements)."""
    return tuple(n for n in algorithm_names() if not isinstance(_REGISTRY[n], Refinement))


def refinement_names() -> tuple[str, ...]:
    return tuple(n for n in algorithm_names() if isinstance(_REGISTRY[n], Refinement))


def get_algorithm(name: str) -> Algorithm:
    _load()
    if name not in _REGISTRY:
        raise AsrQuantError(f"unknown algorithm {name!r} (expected one of: {', '.join(algorithm_names())})")
    return _REGISTRY[name]


def _load() -> None:
    global _loaded
    if _loaded:
        return
    found = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]))
    for module in [m for m in _LISTED_FIRST if m in found] + [m for m in found if m not in _LISTED_FIRST]:
        importlib.import_module(f"{__package__}.{module}")
    _loaded = True
