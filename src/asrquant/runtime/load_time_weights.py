"""Weights a graph takes as inputs, computed once at load by the artifact's ``encoder_weights`` graph.

An ``--compute int8`` export of a 4- or 8-bit recipe keeps the encoder's codes at the recipe's bits
and lets this graph expand them to the int8 per-channel weights the encoder's integer GEMMs read
(see :mod:`asrquant.export.onnx.int8_matmul`). Both runners (Whisper, Qwen3-ASR) load it here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import ArtifactError
from .int8_weights import as_graph_takes


def load_time_weights(graph: ort.InferenceSession, graph_path: Path, data_inputs: set[str],
                      weights_path: Path | None, threads: int | None = None) -> dict[str, np.ndarray]:
    """The inputs of ``graph`` that are not ``data_inputs``, computed by the graph at
    ``weights_path``; {} for a graph that takes none."""
    wanted = [i.name for i in graph.get_inputs() if i.name not in data_inputs]
    if not wanted:
        return {}
    if weights_path is None:
        raise ArtifactError(f"{graph_path}: takes {len(wanted)} weights as inputs ({wanted[0]}, ...) that an "
                            "encoder_weights graph computes, and the artifact has none for it; export it again")
    options = ort.SessionOptions()
    # No graph optimizations: every value of this graph is a constant, and folding them all at
    # session creation held every intermediate at once; run node by node, each is freed after use.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.enable_cpu_mem_arena = False  # give the intermediates back to the system, not to an arena kept
    if threads:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    try:
        session = ort.InferenceSession(str(weights_path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise ArtifactError(f"{weights_path}: onnxruntime cannot load it ({e})") from None
    missing = sorted(set(wanted) - {o.name for o in session.get_outputs()})
    if missing:
        raise ArtifactError(f"{weights_path}: does not compute {len(missing)} weights {graph_path.name} takes "
                            f"({missing[0]}, ...); export the model again")
    # the int8 weights come as uint8 + 128; a graph opened signed for this CPU takes the codes (int8_weights)
    return as_graph_takes(graph, dict(zip(wanted, session.run(wanted, {}))))
