"""What every family's ONNX export shares: tracing (float32 copies whose Linears are
``x @ weight_t + bias`` on initializers named ``<module>.weight_t``), packing the quantized Linears
as MatMulNBits or int8 GEMMs, and what a variant's manifest entry says. A family's
``onnx_graphs`` module supplies its graphs (what to trace, with which inputs) and uses these."""

from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from ...quant.linear import QuantLinear, linear_names
from ...quant.qtensor import QuantizedWeight
from ...runtime.onnx_layout import ENCODER_WEIGHTS
from .int8_matmul import OP_NOTE as INT8_OP
from .int8_matmul import replace_linears_int8, weights_graph
from .matmulnbits import PackedNBits, accuracy_level_for, pack, replace_linears

OPSET = 17  # LayerNormalization is one op from 17


class LinearT(nn.Module):
    """``(x * inv_input_scale) @ weight_t + bias``, built from an nn.Linear or a QuantLinear."""

    def __init__(self, linear: nn.Module):
        super().__init__()
        self.weight_t = nn.Parameter(linear.weight.detach().float().t().contiguous(), requires_grad=False)
        bias = linear.bias
        self.bias = None if bias is None else nn.Parameter(bias.detach().float().clone(), requires_grad=False)
        inv = getattr(linear, "inv_input_scale", None)
        self.inv_input_scale = None if inv is None else nn.Parameter(inv.detach().float().clone(), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.inv_input_scale is not None:
            x = x * self.inv_input_scale
        y = torch.matmul(x, self.weight_t)
        return y if self.bias is None else y + self.bias


def export_copy(model: nn.Module) -> nn.Module:
    """A float32 CPU copy of ``model`` whose Linears are :class:`LinearT` (same module names)."""
    m = copy.deepcopy(model).float().cpu().eval()
    for name in linear_names(m):
        parent, _, leaf = name.rpartition(".")
        setattr(m.get_submodule(parent), leaf, LinearT(m.get_submodule(name)))
    return m


def trace(module: nn.Module, args: tuple, inputs: list[str], outputs: list[str], axes: dict,
          custom_opsets: dict[str, int] | None = None) -> onnx.ModelProto:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy-exporter deprecation and tracer notes
        # custom_opsets: the contrib domain of a graph with fused attention (see .attention)
        torch.onnx.export(module, args, f, dynamo=False, opset_version=OPSET, input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, do_constant_folding=True,
                          custom_opsets=custom_opsets)
    return onnx.load_from_string(f.getvalue())


def quantized_linears(model: nn.Module) -> dict[str, QuantizedWeight]:
    return {n: m.qweight for n, m in model.named_modules() if isinstance(m, QuantLinear)}


def pack_linears(model: nn.Module) -> dict[str, PackedNBits]:
    return {n: pack(qw, n) for n, qw in quantized_linears(model).items()}


COMPUTE = ("float", "int8")
# MatMulNBits' float compute: an encoder Linear kept off the int8 chain is kept off int8 activations too
# (accuracy_level 4 quantizes them per block), whatever the level of the decoders' MatMulNBits.
FLOAT_COMPUTE = 0
INT8_GRAPHS = ("encoder",)  # the graphs whose Linears multiply every audio frame (every family)


def decoder_accuracy_level(accuracy_level: int | None, compute: str) -> int | None:
    """With ``compute="int8"`` the MatMulNBits left in the decoders default to accuracy_level 4:
    at one row per step it is the fast kernel (figures: benchmarks/onnx-export/README.md)."""
    return 4 if accuracy_level is None and compute == "int8" else accuracy_level


def quantize_graphs(protos: dict[str, onnx.ModelProto], packed: dict[str, PackedNBits], accuracy_level: int | None,
                    compute: str = "float", qweights: dict[str, QuantizedWeight] | None = None,
                    smooth: dict[str, np.ndarray] | None = None,
                    keep_float: frozenset[str] | set[str] = frozenset()) -> dict[str, str]:
    """Quantized Linears -> MatMulNBits; with ``compute="int8"`` every Linear of the encoder graph
    (quantized or float; ``qweights`` are the recipe's weights) -> int8 GEMMs instead (see
    :mod:`.int8_matmul`), and ``protos`` gains the ``encoder_weights`` graph when some of their
    int8 weights are expanded at load; ``smooth``: the int8 Linears' input smoothing
    (:mod:`.smoothing`); ``keep_float``: encoder Linears left on float compute (chosen by
    :mod:`.int8_choice`): MatMulNBits at accuracy_level 0 when quantized, MatMul when float.
    Returns the Linears that run in int8 -> where their int8 weights come from."""
    if compute not in COMPUTE:
        raise ValueError(f"compute must be one of {COMPUTE}, not {compute!r}")
    found, int8, at_load = set(), {}, {}
    for name, proto in list(protos.items()):
        if compute == "int8" and name in INT8_GRAPHS:
            stored, expand = replace_linears_int8(proto, qweights or {}, packed, smooth, skip=keep_float)
            int8.update(stored)
            at_load.update(expand)
            kept = {n: packed[n] for n in keep_float if n in packed}
            found.update(replace_linears(proto, kept, FLOAT_COMPUTE))
        else:
            found.update(replace_linears(proto, packed, decoder_accuracy_level(accuracy_level, compute)))
    missing = sorted(set(packed) - found - set(int8))
    if missing:
        raise RuntimeError(f"quantized Linears not found in the traced graphs: {', '.join(missing)}")
    if at_load:
        protos[ENCODER_WEIGHTS] = weights_graph(at_load, smooth)
    return int8


def linear_schemes(model: nn.Module, packed: dict[str, PackedNBits], recipe=None, accuracy_level: int | None = None,
                   float_dtype: str = "float32", int8: dict[str, str] | None = None,
                   keep_float: frozenset[str] | set[str] = frozenset()) -> dict:
    """How every Linear is stored and run (a variant's manifest entry), and under "*" every
    other weight. ``int8``: the Linears run by int8 GEMMs -> where their int8 weight comes from
    (see quantize_graphs); ``keep_float``: the encoder Linears quantize_graphs kept on float compute."""
    int8 = int8 or {}
    table = {"*": {"scheme": float_dtype}}
    for name in linear_names(model):
        if name not in packed:
            table[name] = ({"scheme": "int8-ch-sym", "stored": int8[name], "op": INT8_OP} if name in int8 else
                           {"scheme": float_dtype, "op": "MatMul"})
            continue
        qw = model.get_submodule(name).qweight
        rule = recipe.rule_for(name) if recipe is not None else None
        run = ({"op": INT8_OP, "stored": int8[name]} if name in int8 else
               {"op": "MatMulNBits", "accuracy_level": FLOAT_COMPUTE if name in keep_float else
                accuracy_level_for(packed[name].bits, accuracy_level)})
        table[name] = {"scheme": qw.scheme.name, **qw.scheme.to_dict(), **run, "block_size": packed[name].block_size,
                       "input_scale": qw.input_scale is not None, "algorithm": rule.algorithm if rule else None}
    return table


def variant_info(recipe, accuracy_level: int | None, float_dtype: str, tensors: dict, compute: str = "float",
                 attention: dict[str, str] | None = None) -> dict:
    """What a variant's manifest entry says of how it was made (both families' exporters);
    ``attention``: graph -> "fused" or "unfused" where the family offers the choice."""
    return {**({"attention": attention} if attention else {}),
        "recipe": recipe.to_dict() if recipe is not None else None,
        "accuracy_level": "auto" if accuracy_level is None else accuracy_level,
        "compute": compute,
        "float_storage": float_dtype,
        "tensors": tensors,
        "exporter": {"method": "torch.onnx.export(dynamo=False)", "torch": torch.__version__,
                     "onnx": onnx.__version__, "opset": OPSET},
    }
