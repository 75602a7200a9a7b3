"""Quantization algorithms (RTN, GPTQ, AWQ) on single weight matrices, registered by name.

Only the registry is imported here: it imports the algorithms, and torch, when first asked.
"""

from .registry import Algorithm, CalibStats, ScaleSearch, algorithm_names, get_algorithm, register, unregister

__all__ = ["Algorithm", "CalibStats", "ScaleSearch", "algorithm_names", "get_algorithm", "register", "unregister"]
