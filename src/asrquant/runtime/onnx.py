"""Opening an ``asrquant export`` ONNX artifact of any family: numpy and onnxruntime, no torch.

The artifact's manifest names its family; the family's ``onnx_session`` builds the transcriber
over its graphs. Every onnxruntime session of every family takes its options from
:func:`session_options`, so one place tunes them all.
"""

from __future__ import annotations

import onnxruntime as ort

from .. import families
from ..spec import parse
from ..transcript import OursEngine


def session_options(threads: int, mem_pattern: bool = True) -> ort.SessionOptions:  # one place to tune every session
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # A memory pattern makes onnxruntime allocate one block for all of a run's intermediates, laid
    # out from the first run. For an encoder (large activations, run once per 30 s window) that
    # block peaks well above the arena reusing freed buffers (benchmarks/onnx-export: mem-pattern.py),
    # so the encoders open without it.
    opts.enable_mem_pattern = mem_pattern
    return opts


def open_onnx_engine(spec: str, threads: int = 2) -> OursEngine:
    """``DIR`` or ``DIR@VARIANT`` of an ONNX export -> an engine, every file checked against the manifest."""
    parsed = parse(spec)
    onnx_session = families.module(parsed.family, "onnx_session")
    transcriber, size = onnx_session.open_transcriber(parsed.model, threads, parsed.variant, spec)
    return OursEngine(spec, transcriber, size, "asrquant-onnx")
