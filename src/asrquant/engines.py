"""Open a model SPEC (see asrquant.spec) as an engine that transcribes: ours, any family, with
torch (the fake-quant reference) or onnxruntime (an export, no torch), or a peer.

Every engine decodes the same way: temperature 0 only, the same beam and maximum length, no
VAD, no conditioning on earlier text, no timestamps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from . import families
from .decoding import loop_end
from .errors import ModelError
from .models.whisper import hub
from .spec import parse
from .transcript import Engine, OursEngine, Transcript


def _peer_transcript(text: str, language: str | None, tokens: list[int], max_new_tokens: int,
                     decode: Callable[[list[int]], str], ended: bool | None = None) -> Transcript:
    """A peer's transcript judged by our loop guard, as our greedy decoding is: where the guard would
    have stopped, the tokens and the text are cut there and the decoding counts as a loop (a peer runs a
    loop on to its own token limit, which would charge it every repetition our decoding never makes).
    Otherwise how it ended, judged from its tokens (peers do not report it): ``ended`` where the peer
    says whether it reached its end token, else by the token count."""
    end = loop_end(tokens)
    if end:
        return Transcript(decode(tokens[:end]).strip(), language, tokens[:end], ["loop"])
    if ended is None:
        ended = len(tokens) < max_new_tokens
    return Transcript(text, language, tokens, ["eot"] if ended else ["max_length"])


# CTranslate2's compute types on a CPU (float16 and bfloat16 need a GPU or a recent CPU; CTranslate2
# says so itself).
CT2_COMPUTE_TYPES = ("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                     "float16", "bfloat16", "float32")


class FasterWhisperPeer:
    engine = "faster-whisper"

    def __init__(self, spec: str, model_dir: Path, compute_type: str, threads: int):
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise ModelError("faster-whisper is not installed: pip install 'asrquant[peers]'") from None
        from .models.whisper.ct2_reader import read_ct2

        if compute_type not in CT2_COMPUTE_TYPES:
            raise ModelError(f"{spec}: unknown compute type {compute_type!r} (expected one of: "
                             f"{', '.join(CT2_COMPUTE_TYPES)})")
        self.spec = spec
        read_ct2(model_dir)  # a truncated or garbled model.bin: our message naming the file, not CTranslate2's
        try:
            self.model = WhisperModel(str(model_dir), device="cpu", compute_type=compute_type, cpu_threads=threads)
        except (RuntimeError, ValueError, OSError) as e:
            raise ModelError(f"{model_dir}: faster-whisper cannot load it ({str(e).strip().splitlines()[0]})") from None
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
        text = " ".join(s.text.strip() for s in segments).strip()
        return _peer_transcript(text, info.language, tokens, max_new_tokens, self.model.hf_tokenizer.decode)


class TransformersPeer:
    engine = "transformers"

    def __init__(self, spec: str, source: str, threads: int):
        import torch

        from .models.whisper.load import build_transformers_whisper, load_whisper
        from .models.whisper.tokenizer import WhisperTokenizer

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
        return _peer_transcript(self.tokenizer.decode(tokens), language, tokens, max_new_tokens,
                                self.tokenizer.decode, ended)


class WhisperCppPeer:
    """whisper.cpp through pywhispercpp: greedy (one candidate), temperature 0 with no fallback,
    no timestamps, no context from earlier windows, non-speech tokens suppressed (as Whisper's
    default and the other engines), no segment dropped as silence.

    ``flash_attn``: whisper.cpp's flash attention (its default since 1.8). On a CPU that kernel sums
    the attention's values in a float16 accumulator; off, whisper.cpp multiplies by the softmax
    with float32 sums, and then its greedy tokens of our float16 file are our torch fp32 model's
    (benchmarks/whisper-cpp/README.md). The decoding is the same either way."""

    engine = "whisper.cpp"

    def __init__(self, spec: str, path: str, threads: int, flash_attn: bool = True):
        try:
            import _pywhispercpp as pw
            from pywhispercpp.model import Model
        except ImportError:
            raise ModelError("pywhispercpp is not installed: pip install 'asrquant[peers]'") from None
        file = Path(path)
        if file.is_dir():
            from .artifact import verify

            file = file / verify(file).get("ggml_file", "ggml-model.bin")
        if not file.is_file():
            raise ModelError(f"{spec}: {file} is not a file (expected a ggml model file or its export directory)")
        self.spec = spec
        self.size_bytes = file.stat().st_size
        self._pw = pw
        self.model = Model(str(file), context_params={"flash_attn": flash_attn},
                           redirect_whispercpp_logs_to=None, n_threads=threads, print_progress=False,
                           print_realtime=False, print_timestamps=False, no_context=True, no_timestamps=True,
                           temperature=0.0, temperature_inc=0.0, greedy={"best_of": 1}, suppress_blank=True,
                           suppress_nst=True, no_speech_thold=1.0)
        if self.model._ctx is None:
            raise ModelError(f"{spec}: whisper.cpp could not load {file}")
        self.multilingual = bool(pw.whisper_is_multilingual(self.model._ctx))

    def transcribe(self, audio, language, beam_size, max_new_tokens):
        if beam_size != 1:
            raise ModelError("the whisper.cpp peer decodes greedily (beam 1) only")
        language = (language or "en") if self.multilingual else "en"
        segments = self.model.transcribe(np.ascontiguousarray(audio, dtype=np.float32), language=language)
        ctx, pw = self.model._ctx, self._pw
        eot = pw.whisper_token_eot(ctx)
        tokens = [pw.whisper_full_get_token_id(ctx, i, j)
                  for i in range(pw.whisper_full_n_segments(ctx)) for j in range(pw.whisper_full_n_tokens(ctx, i))]
        tokens = [t for t in tokens if t < eot]
        text = " ".join(s.text.strip() for s in segments).strip()
        return _peer_transcript(text, language, tokens, max_new_tokens, self._text_of)

    def _text_of(self, tokens: list[int]) -> str:
        """whisper.cpp's own bytes of ``tokens`` (a character may span tokens: joined, then decoded)."""
        ctx = self.model._ctx
        return b"".join(self._pw.whisper_token_to_bytes(ctx, t) for t in tokens).decode("utf-8", errors="replace")


def open_engine(spec: str, threads: int = 2, calib: str | None = None) -> Engine:
    """Any SPEC -> its engine; ``calib`` calibrates a ``MODEL@RECIPE`` quantized now."""
    parsed = parse(spec)
    if parsed.peer == "faster-whisper":
        return FasterWhisperPeer(spec, hub.resolve(parsed.model), parsed.compute, threads)
    if parsed.peer == "transformers":
        return TransformersPeer(spec, parsed.model, threads)
    if parsed.peer == "whisper.cpp":
        return WhisperCppPeer(spec, parsed.model, threads, flash_attn=parsed.compute != "noflash")
    if parsed.kind == "transformers.js":
        from .runtime.transformers_js import open_transformers_js_engine  # onnxruntime only

        return open_transformers_js_engine(spec, parsed.model, threads)
    if parsed.kind == "onnx":
        from .runtime.onnx import open_onnx_engine  # onnxruntime only: no torch on this path

        return open_onnx_engine(spec, threads)
    return open_torch_engine(spec, threads, calib)


def open_torch_engine(spec: str, threads: int = 2, calib: str | None = None) -> OursEngine:
    """Our torch reference: a checkpoint, a saved quantized model, or MODEL@RECIPE quantized now."""
    import torch

    from .quant.command import load_checkpoint

    torch.set_num_threads(threads)
    ckpt, _ = load_checkpoint(spec, calib=calib, progress=False)
    transcriber = families.module(ckpt.family, "torch_session").open_transcriber(ckpt, spec)
    return OursEngine(spec, transcriber, ckpt.size_bytes, "asrquant-torch")
