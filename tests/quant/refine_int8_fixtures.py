"""What the int8-in-the-loop refinement tests of both families check a refinement against: the
model with its learned weights as plain Linears, the int8 chain hooked (emulate_int8) where the
rule asks for it."""

from __future__ import annotations

import copy

import torch

from asrquant.export.onnx.int8_choice import emulate_int8


def learned_as_int8_linears(model, items) -> tuple[torch.nn.Module, list]:
    """(a copy of ``model`` whose refined Linears are plain Linears of their learned weights, the
    emulate_int8 handles of those whose rule says ``activations = "int8"``); ``model`` is inside a
    refinement Session over ``items``."""
    check, handles = copy.deepcopy(model), []
    for it in items:
        m = model.get_submodule(it.name)
        lin = torch.nn.Linear(m.learned.shape[1], m.learned.shape[0], bias=m.bias is not None)
        with torch.no_grad():
            lin.weight.copy_(m.learned())
            if m.bias is not None:
                lin.bias.copy_(m.bias)
        parent, _, leaf = it.name.rpartition(".")
        setattr(check.get_submodule(parent), leaf, lin)
        if it.rule.all_refine_options()["activations"] == "int8":
            handles.append(emulate_int8(lin))
    return check, handles
