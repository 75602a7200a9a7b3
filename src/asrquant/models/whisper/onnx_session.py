"""The onnxruntime session for an exported Whisper: numpy, onnxruntime and tokenizers, no torch.

The self-attention cache lives in numpy buffers the session owns, [layer, batch, head, dh, C]
for keys and [layer, batch, head, C, dh] for values, bound to the step graph once through
onnxruntime's IO binding (OrtValues over the same memory, one per layer). A step writes the new
token's keys/values into column ``position`` in place, so no step copies the cache. The capacity
C starts small and doubles when full (an amortised O(1) copy), since the step graph attends over
all C columns (masked beyond ``position``): a short transcript pays for a short buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ...artifact import read_json
from ...runtime.int8_weights import as_graph_takes, open_graph
from ...runtime.load_time_weights import load_time_weights
from ...runtime.onnx import session_options
from ...runtime.onnx_layout import ENCODER_WEIGHTS, open_variant, runtime_bytes, signed_graph_files
from .detect import FAMILY
from .tokenizer import WhisperTokenizer
from .transcribe import WhisperGeneration, WhisperTranscriber

MIN_CAPACITY = 32


@dataclass
class Cross:
    """One clip's cross-attention keys/values (batch 1: the graphs broadcast it over beams)."""

    k: np.ndarray  # [L, 1, H, dh, A]: float32, or uint8 codes (int8, code XOR 0x80, where the graph reads int8)
    v: np.ndarray  # [L, 1, H, A, dh]
    k_scale: np.ndarray | None = None  # [L, 1, H, 1, dh]: the codes' scales (asrquant.export.onnx.int8_cross)

    def feeds(self, i: int) -> dict[str, np.ndarray]:
        """Layer ``i``'s inputs of a decoder graph."""
        scale = {} if self.k_scale is None else {f"cross_k_scale_{i}": self.k_scale[i]}
        return {f"cross_k_{i}": self.k[i], f"cross_v_{i}": self.v[i], **scale}


class StepCache:
    """The self-attention buffers of one decoding and the step graph's IO binding over them."""

    def __init__(self, session: ort.InferenceSession, cross: Cross, k: np.ndarray, v: np.ndarray, length: int,
                 n_vocab: int):
        self.session, self.cross = session, cross
        self.k, self.v, self.length = k, v, length
        batch = k.shape[1]
        n_layer = k.shape[0]
        self.tokens = np.zeros((batch, 1), np.int64)
        self.position = np.zeros(1, np.int64)
        self.logits = np.empty((batch, n_vocab), np.float32)
        self.new_k = np.empty(k.shape[:4] + (1,), np.float32)  # [L, B, H, dh, 1]
        self.new_v = np.empty(v.shape[:3] + (1, v.shape[4]), np.float32)  # [L, B, H, 1, dh]
        self.n_layer = n_layer
        self._bind()

    @property
    def capacity(self) -> int:
        return self.k.shape[-1]

    def _bind(self) -> None:
        # OrtValues made from numpy arrays share their memory: writing into self.tokens,
        # self.position or the buffers changes what the next run reads, with no rebinding.
        io = self.session.io_binding()
        self._keep = []

        def bind_in(name, arr):
            # A non-contiguous array would be copied, and later writes into it not seen.
            assert arr.flags["C_CONTIGUOUS"], name
            value = ort.OrtValue.ortvalue_from_numpy(arr)
            self._keep.append(value)
            io.bind_ortvalue_input(name, value)

        def bind_out(name, arr):
            value = ort.OrtValue.ortvalue_from_numpy(arr)
            self._keep.append(value)
            io.bind_ortvalue_output(name, value)

        bind_in("tokens", self.tokens)
        bind_in("position", self.position)
        for i in range(self.n_layer):
            bind_in(f"past_k_{i}", self.k[i])
            bind_in(f"past_v_{i}", self.v[i])
            for name, value in self.cross.feeds(i).items():
                bind_in(name, value)
        bind_out("logits", self.logits)
        bind_out("new_k", self.new_k)
        bind_out("new_v", self.new_v)
        self.io = io

    def grow(self, limit: int) -> None:
        capacity = min(limit, 2 * self.capacity)
        k = np.zeros(self.k.shape[:4] + (capacity,), np.float32)
        v = np.zeros(self.v.shape[:3] + (capacity, self.v.shape[4]), np.float32)
        k[..., : self.length] = self.k[..., : self.length]
        v[:, :, :, : self.length] = self.v[:, :, :, : self.length]
        self.k, self.v = k, v
        self._bind()

    def run(self, tokens: np.ndarray) -> np.ndarray:
        self.tokens[:, 0] = tokens
        self.position[0] = self.length
        self.session.run_with_iobinding(self.io)
        self.k[..., self.length] = self.new_k[..., 0]
        self.v[:, :, :, self.length] = self.new_v[:, :, :, 0]
        self.length += 1
        return self.logits.copy()

    def reordered(self, rows: np.ndarray) -> "StepCache":
        # Fancy indexing on the batch axis may come back with layer-major strides: make it C order.
        k, v = np.ascontiguousarray(self.k[:, rows]), np.ascontiguousarray(self.v[:, rows])
        return StepCache(self.session, self.cross, k, v, self.length,
                         self.logits.shape[1])


def _load(path: Path, threads: int, mem_pattern: bool = True, signed: Path | None = None) -> ort.InferenceSession:
    return open_graph(path, session_options(threads, mem_pattern), signed=signed)  # int8 weights signed on VNNI / AMX


class OnnxWhisperSession:
    """The :class:`asrquant.decoding.Session` of an exported Whisper, plus ``encode(mel)``.

    Two onnxruntime sessions: the encoder, and the decoder step graph, which also takes the
    prompt (T tokens at position 0); see :mod:`asrquant.models.whisper.onnx_graphs` for why the artifact's
    decoder_prefill graph is not loaded."""

    def __init__(self, graphs: dict[str, Path], dims: dict, threads: int = 2, signed: dict[str, Path] | None = None):
        """``signed``: graph -> the file to open where int8 weights run signed (its signed twin; see
        asrquant.runtime.onnx_layout.signed_graph_files); without it, graphs are signed in memory."""
        signed = signed or {}
        self.encoder = _load(graphs["encoder"], threads, mem_pattern=False, signed=signed.get("encoder"))
        # {} unless the encoder's int8 weights are expanded at load (see asrquant.export.onnx.int8_matmul)
        self.encoder_weights = load_time_weights(self.encoder, graphs["encoder"], {"mel"}, graphs.get(ENCODER_WEIGHTS),
                                                 threads)
        self.step_graph = _load(graphs["decoder_step"], threads, signed=signed.get("decoder_step"))
        self.n_layer = dims["n_text_layer"]
        self.n_vocab = dims["n_vocab"]
        self.max_positions = dims["n_text_ctx"]

    def encode(self, mel: np.ndarray) -> Cross:
        return self.encode_batch([mel])[0]

    def encode_batch(self, mels: list[np.ndarray]) -> list[Cross]:
        """Several windows' log-mels through one encoder run; one Cross per window (each a
        contiguous batch-1 copy: the step graph binds it, and a view would keep the whole batch)."""
        k, v, *k_scale = self.encoder.run(None, {"mel": np.ascontiguousarray(np.stack(mels), dtype=np.float32),
                                                 **self.encoder_weights})
        if k_scale:  # int8 keys: as codes where the step graph reads int8 (asrquant.runtime.int8_weights)
            k = as_graph_takes(self.step_graph, {"cross_k_0": k})["cross_k_0"]
        if len(mels) == 1:
            return [Cross(k, v, *k_scale)]
        return [Cross(*(np.ascontiguousarray(a[:, w : w + 1]) for a in (k, v, *k_scale))) for w in range(len(mels))]

    def prefill(self, enc: Cross, prompt: np.ndarray, batch: int):
        # Every row sees the same prompt: run one row, through the step graph at position 0
        # (the buffer all masked), and copy its keys/values into each row's buffer.
        t = prompt.shape[0]
        capacity = min(self.max_positions, max(MIN_CAPACITY, 1 << t.bit_length()))
        n, h, dh = self.n_layer, enc.k.shape[2], enc.k.shape[3]
        empty_k = np.zeros((1, h, dh, capacity), np.float32)
        empty_v = np.zeros((1, h, capacity, dh), np.float32)
        feeds = {"tokens": prompt[None].astype(np.int64), "position": np.zeros(1, np.int64),
                 **{f"past_k_{i}": empty_k for i in range(n)}, **{f"past_v_{i}": empty_v for i in range(n)},
                 **{name: value for i in range(n) for name, value in enc.feeds(i).items()}}
        logits, k, v = self.step_graph.run(None, feeds)
        kb = np.zeros((n, batch, h, dh, capacity), np.float32)
        vb = np.zeros((n, batch, h, capacity, dh), np.float32)
        kb[..., :t] = k
        vb[:, :, :, :t] = v
        cache = StepCache(self.step_graph, enc, kb, vb, t, self.n_vocab)
        return np.repeat(logits, batch, axis=0), cache

    def step(self, tokens: np.ndarray, cache: StepCache):
        if cache.length == cache.capacity:
            cache.grow(self.max_positions)
        return cache.run(tokens), cache

    def reorder(self, cache: StepCache, rows: np.ndarray) -> StepCache:
        return cache.reordered(np.asarray(rows))


def open_onnx_artifact(directory: str | Path, threads: int = 2, variant: str | None = None):
    """(WhisperTranscriber, size in bytes of the files it runs) for an export, after checking
    every file against the manifest; ``variant`` picks suffixed graphs, falling back to the default."""
    directory = Path(directory)
    manifest, name, files = open_variant(directory, variant, FAMILY)
    listed = manifest["files"]
    config = read_json(directory / "config.json")
    signed = signed_graph_files(directory, manifest, name, files)
    session = OnnxWhisperSession({g: directory / f for g, f in files.items()}, config["dims"], threads,
                                 {g: directory / f for g, f in signed.items()})
    tokenizer = WhisperTokenizer(directory / "tokenizer.json", multilingual=config["multilingual"])
    generation = WhisperGeneration(tuple(config["suppress_ids"]), tuple(config["suppress_ids_begin"]), config["n_mels"])
    return WhisperTranscriber(session, tokenizer, generation), runtime_bytes(files, name, listed)


def open_transcriber(directory: Path, threads: int, variant: str | None, spec: str):
    """The family's role for asrquant.runtime.onnx: (transcriber, bytes it runs)."""
    return open_onnx_artifact(directory, threads, variant)
