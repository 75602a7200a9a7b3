"""The int8 GEMM weights' signedness, picked for this CPU when a graph is opened.

An ``--compute int8`` export stores the weights of its integer GEMMs (``MatMulIntegerToFloat``) as
uint8 + 128 (see :mod:`asrquant.export.onnx.int8_matmul`): with uint8 activations, onnxruntime's
u8 x u8 kernel is exact on every CPU, while its u8 x s8 kernel on AVX2 without VNNI sums pairs of
products in 16 bits (VPMADDUBSW) and saturates. Where the CPU has VNNI (AVX512-VNNI, AVX-VNNI) or
AMX, u8 x s8 accumulates in 32 bits (VPDPBUSD, AMX tiles): exact too, and 2.3 to 2.7 x faster than
u8 x u8 on whisper-base's encoder shapes (benchmarks/onnx-speed/README.md, "int8 operand
signedness"). So on such a CPU the runner gives the graph its weights as int8 (the code itself,
``(code + 128) XOR 0x80``) with a weight zero point of 0: the same integers, the same products.

The exporter writes, beside each graph with such GEMMs, its signed twin (the edit of
:mod:`.signed_graph` made once, at export; the manifest records it), so the runner opens a file
and needs no ``onnx`` package; a graph of an artifact written before twins is edited in memory.

``ASRQUANT_INT8_WEIGHTS=u8`` or ``s8`` overrides the choice (``auto``, the default, asks the CPU).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..cpu import cpu_info
from ..errors import ArtifactError, AsrQuantError
from .signed_graph import OP, to_signed, xor80

ENV = "ASRQUANT_INT8_WEIGHTS"
SIGNED_ON = ("AVX512-VNNI", "AVX-VNNI", "AMX")  # cpu.FEATURES labels whose u8 x s8 kernel does not saturate


def signed_int8(features: list[str] | None = None) -> bool:
    """Whether int8 GEMM weights run signed here: the override, else whether the CPU has VNNI or AMX."""
    choice = os.environ.get(ENV, "auto").strip().lower()
    if choice in ("u8", "s8"):
        return choice == "s8"
    if choice != "auto":
        raise AsrQuantError(f"environment variable {ENV}={choice!r}: expected auto, u8 or s8")
    have = cpu_info()["features"] if features is None else features
    return any(f in have for f in SIGNED_ON)


def open_graph(path: Path, options: ort.SessionOptions, providers: list[str] | None = None,
               signed: Path | None = None) -> ort.InferenceSession:
    """An onnxruntime session of the graph at ``path``, its int8 GEMM weights signed where
    :func:`signed_int8` says so. There the file ``signed`` is opened as it is: the graph's signed
    twin that the exporter wrote, or the graph itself where it has nothing to sign (the layout's
    :func:`~asrquant.runtime.onnx_layout.signed_graph_files`). ``signed`` None (an artifact written
    before twins): the graph is read, edited and handed over in memory; a graph without such GEMMs
    opens from its file as it is."""
    providers = providers or ["CPUExecutionProvider"]
    if signed_int8():
        if signed is not None:
            return ort.InferenceSession(str(signed), options, providers=providers)
        import onnx  # here only: 16 MB of resident memory that a twin or a CPU without VNNI / AMX does not need

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as e:  # onnx raises protobuf's DecodeError and others
            raise ArtifactError(f"{path}: not a readable ONNX graph ({e})") from None
        if any(n.op_type == OP for n in proto.graph.node):
            onnx.external_data_helper.load_external_data_for_model(proto, str(Path(path).parent))
            if to_signed(proto):
                return ort.InferenceSession(proto.SerializeToString(), options, providers=providers)
    return ort.InferenceSession(str(path), options, providers=providers)


def as_graph_takes(session: ort.InferenceSession, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``values`` (load-time weights, uint8 + 128 where int8) with every uint8 array the graph takes
    as int8 turned into the code itself, in place (no second copy of the weights at load)."""
    wanted = {i.name: i.type for i in session.get_inputs()}
    return {k: xor80(v, inplace=True).view(np.int8) if v.dtype == np.uint8 and wanted.get(k) == "tensor(int8)"
            else v for k, v in values.items()}

