"""The torch-free Qwen3-ASR session: numpy + onnxruntime over the three exported graphs
(see :mod:`asrquant.models.qwen3_asr.onnx_graphs`). Same protocol as the torch session, so the same
:class:`~asrquant.models.qwen3_asr.transcribe.Qwen3ASRTranscriber` and decoding loop apply.

:func:`open_onnx_artifact` opens an artifact written by ``asrquant export`` (one of its
variants) after checking every file against its manifest and that the manifest says family
"qwen3-asr".
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import ArtifactError
from ...runtime.int8_weights import open_graph
from ...runtime.load_time_weights import load_time_weights
from ...runtime.onnx import session_options
from ...runtime.onnx_layout import ENCODER_WEIGHTS, open_variant, runtime_bytes, signed_graph_files
from .detect import FAMILY
from .features import chunk_mel
from .tokenizer import Qwen3ASRTokenizer
from .transcribe import EngineTranscriber, Qwen3ASRTranscriber

GRAPHS = ("encoder", "decoder_prefill", "decoder_step")


class Qwen3ASROnnxSession:
    def __init__(self, graph_dir: str | Path, *, n_window: int = 50, n_window_infer: int = 800,
                 max_positions: int = 65536, providers: list[str] | None = None,
                 files: dict[str, str] | None = None, threads: int | None = None,
                 signed: dict[str, str] | None = None):  # fmt: skip
        """``files`` maps a graph to its file in ``graph_dir`` (default ``{graph}.onnx``); ``signed`` a
        graph to the file to open where int8 weights run signed (its signed twin; see
        asrquant.runtime.onnx_layout.signed_graph_files); without it, graphs are signed in memory."""
        d = Path(graph_dir)
        opts = session_options(threads or 0)  # 0: onnxruntime's default thread count
        prov = providers or ["CPUExecutionProvider"]
        files = files or {g: f"{g}.onnx" for g in GRAPHS}
        signed = signed or {}
        self.graphs = {g: open_graph(d / files[g], opts, prov, d / signed[g] if g in signed else None)
                       for g in GRAPHS}  # int8 weights signed on VNNI / AMX
        # {} unless the audio encoder's int8 weights are expanded at load (see asrquant.export.onnx.int8_matmul)
        weights = d / files[ENCODER_WEIGHTS] if ENCODER_WEIGHTS in files else None
        self.encoder_weights = load_time_weights(self.graphs["encoder"], d / files["encoder"], {"chunks", "n_tokens"},
                                                 weights, threads)
        self.n_window, self.n_window_infer = n_window, n_window_infer
        self.max_positions = max_positions

    def encode(self, mel: np.ndarray) -> np.ndarray:
        chunks, n = chunk_mel(np.ascontiguousarray(mel, dtype=np.float32), self.n_window, self.n_window_infer)
        out = self.graphs["encoder"].run(None, {"chunks": chunks, "n_tokens": np.array(n, dtype=np.int64),
                                                **self.encoder_weights})[0]
        return out[:n]

    def prefill(self, enc: np.ndarray, prompt: np.ndarray, batch: int):
        ids = np.repeat(np.asarray(prompt, dtype=np.int64)[None], batch, axis=0)
        logits, k, v = self.graphs["decoder_prefill"].run(None, {"input_ids": ids, "audio": enc})
        return logits[:, -1], (k, v)

    def step(self, tokens: np.ndarray, cache):
        k, v = cache
        feed = {"tokens": np.asarray(tokens, dtype=np.int64)[:, None], "past_k": k, "past_v": v,
                "offset": np.array(k.shape[3], dtype=np.int64)}  # fmt: skip
        logits, nk, nv = self.graphs["decoder_step"].run(None, feed)
        return logits[:, -1], (np.concatenate([k, nk], 3), np.concatenate([v, nv], 3))

    def reorder(self, cache, rows: np.ndarray):
        return tuple(np.take(t, rows, axis=1) for t in cache)


def _read_config(path: Path) -> dict:
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{path}: cannot read ({e})") from None
    missing = [k for k in ("n_mels", "n_window", "n_window_infer", "max_positions") if k not in config]
    if missing:
        raise ArtifactError(f"{path}: no {', '.join(missing)}; not the config of a Qwen3-ASR export")
    return config


def open_onnx_artifact(directory: str | Path, threads: int = 2, variant: str | None = None):
    """(Qwen3ASRTranscriber, bytes of the files it runs) for an export of ``asrquant export``."""
    directory = Path(directory)
    manifest, name, files = open_variant(directory, variant, FAMILY)
    listed = manifest["files"]
    config = _read_config(directory / "config.json")
    session = Qwen3ASROnnxSession(directory, n_window=config["n_window"], n_window_infer=config["n_window_infer"],
                                  max_positions=config["max_positions"], files=files, threads=threads,
                                  signed=signed_graph_files(directory, manifest, name, files))
    transcriber = Qwen3ASRTranscriber(session, Qwen3ASRTokenizer(directory / "tokenizer.json"), config["n_window"],
                                      config["n_mels"])
    return transcriber, runtime_bytes(files, name, listed)


def open_transcriber(directory: Path, threads: int, variant: str | None, spec: str):
    """The family's role for asrquant.runtime.onnx: (transcriber, bytes it runs)."""
    transcriber, size = open_onnx_artifact(directory, threads, variant)
    return EngineTranscriber(transcriber, spec), size
