"""Weight quantization: one representation (:class:`QuantizedWeight`), its schemes, the
algorithms (RTN, GPTQ, AWQ) on single weight matrices, the fake-quant Linear and recipes."""

from .linear import QuantEmbedding, QuantLinear
from .qtensor import QuantizedWeight, dequantize, pack_int, unpack_int
from .recipe import Recipe, Rule, builtin_recipes, load_recipe, module_kinds
from .scheme import QuantScheme, bits_per_weight

__all__ = [
    "QuantEmbedding",
    "QuantLinear",
    "QuantizedWeight",
    "QuantScheme",
    "Recipe",
    "Rule",
    "bits_per_weight",
    "builtin_recipes",
    "dequantize",
    "load_recipe",
    "module_kinds",
    "pack_int",
    "unpack_int",
]
