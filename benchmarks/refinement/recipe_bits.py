"""Bits per weight a recipe gives a model, before quantizing it: each Linear and token table the
recipe quantizes, at its rule's scheme (scales and zero points included), as `asrquant quantize`'s
report will count them. For checking an allocation against the issue's 4.5 bits per weight
before spending a quantization and a bench on it.

    python benchmarks/refinement/recipe_bits.py whisper-base RECIPE.toml [RECIPE.toml ...]
"""

import sys

from asrquant import families
from asrquant.quant.recipe import parse_recipe
from asrquant.quant.sensitivity import candidates_of, mean_bits


def recipe_bits(model, recipe) -> tuple[float, int]:
    """Mean bits per quantized weight, and the quantized weights' count: `recipe auto`'s tensors
    and bit count (sensitivity.py), at the schemes of the recipe's rules."""
    candidates = candidates_of(model)
    rules = {t.name: (recipe.embedding_rule_for if t.table else recipe.rule_for)(t.name) for t in candidates}
    tensors = [t for t in candidates if rules[t.name] is not None]
    return mean_bits(tensors, {t.name: rules[t.name].scheme for t in tensors}), sum(t.params for t in tensors)


if __name__ == "__main__":
    model_name, paths = sys.argv[1], sys.argv[2:]
    model = families.get(families.family_of(model_name)).module("load").load(model_name).model
    for p in paths:
        with open(p, encoding="utf-8") as f:
            bpw, n = recipe_bits(model, parse_recipe(f.read(), source=p))
        print(f"{p}: {bpw:.4f} bits per weight over {n} weights")
