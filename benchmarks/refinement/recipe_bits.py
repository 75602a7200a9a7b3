"""Bits per weight a recipe gives a model, before quantizing it: each Linear and token table the
recipe quantizes, at its rule's scheme (scales and zero points included), as `asrquant quantize`'s
report will count them. For checking an allocation against the issue's 4.5 bits per weight
before spending a quantization and a bench on it.

    python benchmarks/refinement/recipe_bits.py whisper-base RECIPE.toml [RECIPE.toml ...]
"""

import sys

from torch import nn

from asrquant import families
from asrquant.quant.recipe import parse_recipe
from asrquant.quant.scheme import bits_per_weight


def recipe_bits(model: nn.Module, recipe) -> tuple[float, int]:
    """Mean bits per quantized weight, and the quantized weights' count."""
    bits = params = 0
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            rule = recipe.rule_for(name)
            n_in = m.in_features
        elif isinstance(m, nn.Embedding):
            rule = recipe.embedding_rule_for(name)
            n_in = m.embedding_dim
        else:
            continue
        if rule is not None:
            bits += bits_per_weight(rule.scheme, n_in) * m.weight.numel()
            params += m.weight.numel()
    return bits / params, params


if __name__ == "__main__":
    model_name, paths = sys.argv[1], sys.argv[2:]
    model = families.get(families.family_of(model_name)).module("load").load(model_name).model
    for p in paths:
        with open(p, encoding="utf-8") as f:
            bpw, n = recipe_bits(model, parse_recipe(f.read(), source=p))
        print(f"{p}: {bpw:.4f} bits per weight over {n} weights")
