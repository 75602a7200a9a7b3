"""The graph edit that turns an int8 export's GEMM weights signed (see :mod:`.int8_weights` for why).

One definition, two users: the exporter runs it on a copy of each graph and writes the result
beside the graph as its signed twin (:mod:`asrquant.export.onnx.artifact`), and the runner runs it
in memory on a graph of an artifact written before twins. ``onnx`` is imported inside the edit
only: the runner imports this module, and opening a twin must not cost the ``onnx`` import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

OP = "MatMulIntegerToFloat"
WEIGHT, WEIGHT_ZERO = 1, 5  # its inputs: A, B, a_scale, b_scale, a_zero_point, b_zero_point
ZERO_S8 = "int8_weights/zero_s8"


def xor80(a: np.ndarray, inplace: bool = False) -> np.ndarray:
    """uint8 ``code + 128`` -> the bytes of int8 ``code`` (two's complement), in one pass."""
    return np.bitwise_xor(a, np.uint8(0x80), out=a if inplace and a.flags.writeable else None)


def to_signed(proto: onnx.ModelProto, base_dir: str = "") -> int:
    """Rewrite, in place, every ``MatMulIntegerToFloat`` of ``proto`` whose weight is uint8 + 128 (an
    initializer, an input the encoder_weights graph computes, or a QuantizeLinear's output at run
    time) to read it as int8 with zero point 0. Returns how many GEMMs changed; 0 leaves ``proto``
    as it was. Initializers stored as external data are read from ``base_dir``; a weight turned
    signed comes back inline (its bytes changed), every other tensor as it was."""
    from onnx import TensorProto, numpy_helper

    g = proto.graph
    inits = {t.name: t for t in g.initializer}
    inputs = {i.name: i for i in g.input}
    zeros = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    producer = {o: n for n in g.node for o in n.output}
    changed, done = 0, set()

    def zero(name: str) -> int | None:
        return _zero_value(name, inits, zeros, base_dir)

    for node in g.node:
        if node.op_type != OP or len(node.input) <= WEIGHT_ZERO:
            continue
        w, z = node.input[WEIGHT], node.input[WEIGHT_ZERO]
        if zero(z) != 128:
            continue  # not our uint8 + 128 layout: left alone
        if w not in done:
            quantize = _quantized_at_run_time(w, producer)
            if w in inits and inits[w].data_type == TensorProto.UINT8:
                signed = xor80(numpy_helper.to_array(inits[w], base_dir)).view(np.int8)
                inits[w].CopyFrom(numpy_helper.from_array(signed, w))
            elif w in inputs and inputs[w].type.tensor_type.elem_type == TensorProto.UINT8:
                inputs[w].type.tensor_type.elem_type = TensorProto.INT8
            elif quantize is not None and zero(quantize.input[2]) == 128:
                quantize.input[2] = ZERO_S8  # the same rounding and clipping, 128 lower: the code itself
            else:
                continue
            done.add(w)
        node.input[WEIGHT_ZERO] = ZERO_S8
        changed += 1
    if changed:
        g.initializer.append(numpy_helper.from_array(np.array(0, np.int8), ZERO_S8))
    return changed


def _quantized_at_run_time(name: str, producer: dict) -> onnx.NodeProto | None:
    """The QuantizeLinear that computes ``name`` through layout-only ops (Reshape, Transpose), as
    the encoder's attention keys are (:mod:`asrquant.export.onnx.int8_scores`); else None."""
    node = producer.get(name)
    while node is not None and node.op_type in ("Reshape", "Transpose"):
        node = producer.get(node.input[0])
    return node if node is not None and node.op_type == "QuantizeLinear" and len(node.input) == 3 else None


def _zero_value(name: str, inits: dict, constants: dict, base_dir: str) -> int | None:
    from onnx import helper, numpy_helper

    if name in inits:
        t = inits[name]
    elif name in constants:
        t = helper.get_attribute_value(constants[name].attribute[0])
    else:
        return None
    a = numpy_helper.to_array(t, base_dir)
    return int(a.reshape(-1)[0]) if a.dtype == np.uint8 and a.size and (a == a.reshape(-1)[0]).all() else None
