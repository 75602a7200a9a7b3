"""The int8 GEMM weights' signedness, picked for this CPU when a graph is opened.

An ``--compute int8`` export stores the weights of its integer GEMMs (``MatMulIntegerToFloat``) as
uint8 + 128 (see :mod:`asrquant.export.onnx.int8_matmul`): with uint8 activations, onnxruntime's
u8 x u8 kernel is exact on every CPU, while its u8 x s8 kernel on AVX2 without VNNI sums pairs of
products in 16 bits (VPMADDUBSW) and saturates. Where the CPU has VNNI (AVX512-VNNI, AVX-VNNI) or
AMX, u8 x s8 accumulates in 32 bits (VPDPBUSD, AMX tiles): exact too, and 2.3 to 2.7 x faster than
u8 x u8 on whisper-base's encoder shapes (benchmarks/onnx-speed/README.md, "int8 operand
signedness"). So on such a CPU the runner gives the graph its weights as int8 (the code itself,
``(code + 128) XOR 0x80``) with a weight zero point of 0: the same integers, the same products.

``ASRQUANT_INT8_WEIGHTS=u8`` or ``s8`` overrides the choice (``auto``, the default, asks the CPU).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from ..cpu import cpu_info
from ..errors import ArtifactError, AsrQuantError

if TYPE_CHECKING:
    import onnx

ENV = "ASRQUANT_INT8_WEIGHTS"
SIGNED_ON = ("AVX512-VNNI", "AVX-VNNI", "AMX")  # cpu.FEATURES labels whose u8 x s8 kernel does not saturate
OP = "MatMulIntegerToFloat"
WEIGHT, WEIGHT_ZERO = 1, 5  # its inputs: A, B, a_scale, b_scale, a_zero_point, b_zero_point
ZERO_S8 = "int8_weights/zero_s8"


def signed_int8(features: list[str] | None = None) -> bool:
    """Whether int8 GEMM weights run signed here: the override, else whether the CPU has VNNI or AMX."""
    choice = os.environ.get(ENV, "auto").strip().lower()
    if choice in ("u8", "s8"):
        return choice == "s8"
    if choice != "auto":
        raise AsrQuantError(f"environment variable {ENV}={choice!r}: expected auto, u8 or s8")
    have = cpu_info()["features"] if features is None else features
    return any(f in have for f in SIGNED_ON)


def to_signed(proto: onnx.ModelProto) -> int:
    """Rewrite, in place, every ``MatMulIntegerToFloat`` of ``proto`` whose weight is uint8 + 128 (an
    initializer, an input the encoder_weights graph computes, or a QuantizeLinear's output at run
    time) to read it as int8 with zero point 0. Returns how many GEMMs changed; 0 leaves ``proto``
    as it was."""
    from onnx import TensorProto, numpy_helper

    g = proto.graph
    inits = {t.name: t for t in g.initializer}
    inputs = {i.name: i for i in g.input}
    zeros = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    producer = {o: n for n in g.node for o in n.output}
    changed, done = 0, set()
    for node in g.node:
        if node.op_type != OP or len(node.input) <= WEIGHT_ZERO:
            continue
        w, z = node.input[WEIGHT], node.input[WEIGHT_ZERO]
        if _zero_value(z, inits, zeros) != 128:
            continue  # not our uint8 + 128 layout: left alone
        if w not in done:
            quantize = _quantized_at_run_time(w, producer)
            if w in inits and inits[w].data_type == TensorProto.UINT8:
                signed = _xor80(numpy_helper.to_array(inits[w])).view(np.int8)
                inits[w].CopyFrom(numpy_helper.from_array(signed, w))
            elif w in inputs and inputs[w].type.tensor_type.elem_type == TensorProto.UINT8:
                inputs[w].type.tensor_type.elem_type = TensorProto.INT8
            elif quantize is not None and _zero_value(quantize.input[2], inits, zeros) == 128:
                quantize.input[2] = ZERO_S8  # the same rounding and clipping, 128 lower: the code itself
            else:
                continue
            done.add(w)
        node.input[WEIGHT_ZERO] = ZERO_S8
        changed += 1
    if changed:
        g.initializer.append(numpy_helper.from_array(np.array(0, np.int8), ZERO_S8))
    return changed


def open_graph(path: Path, options: ort.SessionOptions,
               providers: list[str] | None = None) -> ort.InferenceSession:
    """An onnxruntime session of the graph at ``path``, its int8 GEMM weights signed where
    :func:`signed_int8` says so (the graph is read, edited and handed over in memory; a graph
    without such GEMMs opens from its file as it is)."""
    providers = providers or ["CPUExecutionProvider"]
    if signed_int8():
        import onnx  # here only: 17 MB of resident memory that a CPU without VNNI / AMX does not need

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as e:  # onnx raises protobuf's DecodeError and others
            raise ArtifactError(f"{path}: not a readable ONNX graph ({e})") from None
        if any(n.op_type == OP for n in proto.graph.node):
            onnx.external_data_helper.load_external_data_for_model(proto, str(Path(path).parent))
            if to_signed(proto):
                return ort.InferenceSession(proto.SerializeToString(), options, providers=providers)
    return ort.InferenceSession(str(path), options, providers=providers)


def _quantized_at_run_time(name: str, producer: dict) -> onnx.NodeProto | None:
    """The QuantizeLinear that computes ``name`` through layout-only ops (Reshape, Transpose), as
    the encoder's attention keys are (:mod:`asrquant.export.onnx.int8_scores`); else None."""
    node = producer.get(name)
    while node is not None and node.op_type in ("Reshape", "Transpose"):
        node = producer.get(node.input[0])
    return node if node is not None and node.op_type == "QuantizeLinear" and len(node.input) == 3 else None


def as_graph_takes(session: ort.InferenceSession, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``values`` (load-time weights, uint8 + 128 where int8) with every uint8 array the graph takes
    as int8 turned into the code itself, in place (no second copy of the weights at load)."""
    wanted = {i.name: i.type for i in session.get_inputs()}
    return {k: _xor80(v, inplace=True).view(np.int8) if v.dtype == np.uint8 and wanted.get(k) == "tensor(int8)"
            else v for k, v in values.items()}


def _xor80(a: np.ndarray, inplace: bool = False) -> np.ndarray:
    """uint8 ``code + 128`` -> the bytes of int8 ``code`` (two's complement), in one pass."""
    return np.bitwise_xor(a, np.uint8(0x80), out=a if inplace and a.flags.writeable else None)


def _zero_value(name: str, inits: dict, constants: dict) -> int | None:
    from onnx import helper, numpy_helper

    if name in inits:
        t = inits[name]
    elif name in constants:
        t = helper.get_attribute_value(constants[name].attribute[0])
    else:
        return None
    a = numpy_helper.to_array(t)
    return int(a.reshape(-1)[0]) if a.dtype == np.uint8 and a.size and (a == a.reshape(-1)[0]).all() else None
