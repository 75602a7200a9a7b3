"""Open a model SPEC as something that transcribes: ours (torch or onnxruntime) or a peer.

SPEC forms:
    whisper-base | PATH                  ours, torch reference (HF, CTranslate2 or asrquant dir;
                                         a Qwen3-ASR / Mega-ASR directory too)
    PATH@RECIPE                          ours, torch, quantized now by RECIPE
    PATH[@VARIANT] (an asrquant ONNX export)  ours, onnxruntime, no torch (Whisper or Qwen3-ASR)
    faster-whisper:NAME_OR_DIR:COMPUTE   CTranslate2 through the faster-whisper package
    transformers:NAME_OR_DIR             Hugging Face WhisperForConditionalGeneration

Every engine decodes the same way: temperature 0 only, the same beam and maximum length, no
VAD, no conditioning on earlier text, no timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .decoding import find_loop
from .errors import ModelError
from .models.whisper.tokenizer import WhisperTokenizer
from .models.whisper.transcribe import Transcript


class Engine(Protocol):
    spec: str
    engine: str
    size_bytes: int

    def transcribe(self, audio: np.ndarray, language: str | None, beam_size: int, max_new_tokens: int) -> Transcript: ...


@dataclass
class OursTorch:
    spec: str
    transcriber: object
    size_bytes: int
    engine: str = "asrquant-torch"

    def transcribe(self, audio, language, beam_size, max_new_tokens):
        return self.transcriber.transcribe(audio, language, beam_size, max_new_tokens)


def _peer_stops(tokens: list[int], max_new_tokens: int) -> list[str]:
    """How a peer's decoding ended, judged from its tokens (peers do not report it)."""
    if find_loop(tokens):
        return ["loop"]
    return ["max_length"] if len(tokens) >= max_new_tokens else ["eot"]


class FasterWhisperPeer:
    engine = "faster-whisper"

    def __init__(self, spec: str, model_dir: Path, compute_type: str, threads: int):
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise ModelError("faster-whisper is not installed: pip install 'asrquant[peers]'") from None
        self.spec = spec
        self.model = WhisperModel(str(model_dir), device="cpu", compute_type=compute_type, cpu_threads=threads)
        self.size_bytes = (model_dir / "model.bin").stat().st_size

    def transcribe(self, audio, language, beam_size, max_new_tokens):
        if not self.model.model.is_multilingual:
            language = "en"
        segments, info = self.model.transcribe(
            audio, language=language, beam_size=beam_size, best_of=1, temperature=0.0,
            condition_on_previous_text=False, vad_filter=False, without_timestamps=True,
            max_new_tokens=max_new_tokens,
        )
        segments = list(segments)
        tokens = [t for s in segments for t in s.tokens]
        return Transcript(" ".join(s.text.strip() for s in segments).strip(), info.language, tokens,
                          _peer_stops(tokens, max_new_tokens))


class TransformersPeer:
    engine = "transformers"

    def __init__(self, spec: str, source: str, threads: int):
        import torch

        from .models.whisper.load import build_transformers_whisper, load_whisper

        try:
            from transformers import WhisperFeatureExtractor
            from transformers.utils import logging as hf_logging
        except ImportError:
            raise ModelError("transformers is not installed: pip install 'asrquant[peers]'") from None
        hf_logging.set_verbosity_error()  # its per-call notices about max_length would flood the bench
        torch.set_num_threads(threads)
        ckpt = load_whisper(source)
        self.spec = spec
        self.size_bytes = ckpt.size_bytes
        self.multilingual = ckpt.dims.n_vocab >= 51865
        self.model = build_transformers_whisper(ckpt).eval()
        self.features = WhisperFeatureExtractor(feature_size=ckpt.dims.n_mels)
        self.eot = self.model.generation_config.eos_token_id
        self.tokenizer = WhisperTokenizer(ckpt.tokenizer_json, self.multilingual)

    def transcribe(self, audio, language, beam_size, max_new_tokens):
        import torch

        feats = self.features(audio, sampling_rate=16000, return_tensors="pt").input_features
        kwargs = dict(language=language, task="transcribe") if self.multilingual else {}
        with torch.inference_mode():
            out = self.model.generate(feats, num_beams=beam_size, do_sample=False, max_new_tokens=max_new_tokens,
                                      return_timestamps=False, **kwargs)
        ids = [int(t) for t in out[0]]
        # generate() returns the forced prompt too: keep what follows <|notimestamps|>.
        notimestamps = self.model.generation_config.no_timestamps_token_id
        if notimestamps in ids:
            ids = ids[ids.index(notimestamps) + 1 :]
        tokens = [t for t in ids if t < self.eot]
        ended = self.eot in ids
        text = self.tokenizer.decode(tokens)
        stops = _peer_stops(tokens, max_new_tokens) if not ended or find_loop(tokens) else ["eot"]
        return Transcript(text, language, tokens, stops)


PEERS = ("faster-whisper", "transformers")


def _split_peer(spec: str) -> tuple[str, str, str]:
    kind, _, rest = spec.partition(":")
    if kind == "faster-whisper":
        name, sep, compute = rest.rpartition(":")
        if not sep:
            name, compute = rest, "float32"
        return kind, name, compute
    return kind, rest, ""


def open_engine(spec: str, threads: int = 2, calib: str | None = None) -> Engine:
    from .models.whisper import hub as registry

    kind, name, compute = _split_peer(spec)
    if kind == "faster-whisper":
        return FasterWhisperPeer(spec, registry.resolve(name), compute, threads)
    if kind == "transformers":
        return TransformersPeer(spec, name, threads)
    from .runtime.onnx_layout import is_onnx_artifact, onnx_family

    if is_onnx_artifact(spec):  # DIR or DIR@VARIANT of `asrquant export`: onnxruntime, no torch
        if onnx_family(spec) == "qwen3-asr":
            from .models.qwen3_asr.onnx_session import open_onnx_engine as open_qwen3_asr_onnx

            return open_qwen3_asr_onnx(spec, threads)
        from .models.whisper.onnx_session import open_onnx_engine

        return open_onnx_engine(spec, threads)
    from .models.qwen3_asr.saved import is_qwen3_asr_spec

    if is_qwen3_asr_spec(spec):  # by the directory's config: a checkpoint, saved quantized, or @RECIPE
        from .models.qwen3_asr.torch_session import open_torch_engine

        return open_torch_engine(spec, threads, calib)
    return open_ours(spec, threads, calib)


def split_recipe(spec: str) -> tuple[str, str | None]:
    """``MODEL@RECIPE`` -> (MODEL, RECIPE); a plain model -> (spec, None)."""
    model, sep, recipe = spec.rpartition("@")
    return (model, recipe) if sep and model and recipe else (spec, None)


def open_ours(spec: str, threads: int = 2, calib: str | None = None) -> OursTorch:
    """Our torch reference: a checkpoint, a saved quantized model, or MODEL@RECIPE quantized now."""
    import torch

    from .models.whisper.load import load_whisper
    from .models.whisper.saved import is_quantized_dir, load_quantized, quantize_whisper
    from .models.whisper.torch_session import WhisperTorchSession
    from .models.whisper.transcribe import WhisperGeneration, WhisperTranscriber

    torch.set_num_threads(threads)
    model, recipe = split_recipe(spec)
    if is_quantized_dir(spec):
        ckpt = load_quantized(spec).ckpt
    elif recipe is not None and not Path(spec).exists():
        ckpt = quantize_whisper(model, recipe, calib).ckpt
    else:
        ckpt = load_whisper(spec)
    tokenizer = WhisperTokenizer(ckpt.tokenizer_json, multilingual=ckpt.dims.n_vocab >= 51865)
    generation = WhisperGeneration(tuple(ckpt.suppress_ids), tuple(ckpt.suppress_ids_begin), ckpt.dims.n_mels)
    return OursTorch(spec, WhisperTranscriber(WhisperTorchSession(ckpt.model), tokenizer, generation), ckpt.size_bytes)
