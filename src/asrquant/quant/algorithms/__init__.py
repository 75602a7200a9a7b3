"""Quantization algorithms (RTN, GPTQ, AWQ; the DWQ refinement) on single weight matrices, registered by name.

Only the registry is imported here: it imports the algorithms, and torch, when first asked.
"""

from .registry import (
    Algorithm,
    CalibStats,
    Refinement,
    ScaleSearch,
    algorithm_names,
    get_algorithm,
    refinement_names,
    register,
    start_names,
    unregister,
)

__all__ = ["Algorithm", "CalibStats", "Refinement", "ScaleSearch", "algorithm_names", "get_algorithm",
           "refinement_names", "register", "start_names", "unregister"]
