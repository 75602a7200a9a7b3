"""The torch-free runner of a ``--format transformers.js`` export: our decoding (the same
:class:`~.transcribe.WhisperTranscriber` as every other runner) over the very graphs the browser
runs, so a browser's transcript can be compared with onnxruntime's in Python on equal terms.

The caches are what transformers.js passes: ``past_key_values.{i}.{decoder,encoder}.{key,value}``,
empty on the first call (``use_cache_branch`` false: the graph computes the cross keys/values from
``encoder_hidden_states``), the previous call's ``present.*`` after it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from ...runtime.onnx import session_options
from .tokenizer import WhisperTokenizer
from .transcribe import WhisperGeneration, WhisperTranscriber


class TransformersJsWhisperSession:
    """The :class:`asrquant.decoding.Session` of the two graphs, plus ``encode(mel)``."""

    def __init__(self, encoder: Path, decoder: Path, config: dict, threads: int = 2):
        providers = ["CPUExecutionProvider"]
        self.encoder = ort.InferenceSession(str(encoder), session_options(threads, mem_pattern=False),
                                            providers=providers)
        self.decoder = ort.InferenceSession(str(decoder), session_options(threads), providers=providers)
        self.outputs = [o.name for o in self.decoder.get_outputs()]
        self.n_layer = config["decoder_layers"]
        self.heads = config["decoder_attention_heads"]
        self.head_dim = config["d_model"] // self.heads
        self.max_positions = config["max_target_positions"]

    def encode(self, mel: np.ndarray) -> np.ndarray:
        return self.encoder.run(None, {"input_features": np.ascontiguousarray(mel[None], dtype=np.float32)})[0]

    def _run(self, tokens: np.ndarray, enc: np.ndarray, cache: dict | None) -> tuple[np.ndarray, dict]:
        feeds = {"input_ids": tokens.astype(np.int64), "encoder_hidden_states": enc,
                 "use_cache_branch": np.array([cache is not None])}
        if cache is None:
            empty = np.zeros((tokens.shape[0], self.heads, 0, self.head_dim), np.float32)
            cache = {f"past_key_values.{i}.{part}.{kv}": empty for i in range(self.n_layer)
                     for part in ("decoder", "encoder") for kv in ("key", "value")}
        out = dict(zip(self.outputs, self.decoder.run(None, {**feeds, **cache})))
        new = {n.replace("present", "past_key_values", 1): v for n, v in out.items() if n.startswith("present.")}
        if feeds["use_cache_branch"][0]:  # the encoder's keys/values stay those of the first call
            new.update({n: v for n, v in cache.items() if ".encoder." in n})
        return out["logits"][:, -1], new

    def prefill(self, enc: np.ndarray, prompt: np.ndarray, batch: int):
        logits, cache = self._run(prompt[None], enc, None)
        cache = {"enc": enc, **{n: np.repeat(v, batch, axis=0) for n, v in cache.items()}}
        return np.repeat(logits, batch, axis=0), cache

    def step(self, tokens: np.ndarray, cache: dict):
        enc = cache.pop("enc")
        logits, new = self._run(np.asarray(tokens)[:, None], enc, cache)
        return logits, {"enc": enc, **new}

    def reorder(self, cache: dict, rows: np.ndarray) -> dict:
        rows = np.asarray(rows)
        return {n: v if n == "enc" else np.ascontiguousarray(v[rows]) for n, v in cache.items()}


def open_transformers_js(directory: Path, graphs: dict[str, str], threads: int = 2) -> WhisperTranscriber:
    import json

    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    generation = json.loads((directory / "generation_config.json").read_text(encoding="utf-8"))
    session = TransformersJsWhisperSession(directory / graphs["encoder_model"],
                                           directory / graphs["decoder_model_merged"], config, threads)
    tokenizer = WhisperTokenizer(directory / "tokenizer.json", multilingual=bool(generation.get("is_multilingual")))
    rules = WhisperGeneration(tuple(generation.get("suppress_tokens", ())),
                              tuple(generation.get("begin_suppress_tokens", ())), config["num_mel_bins"])
    return WhisperTranscriber(session, tokenizer, rules)
