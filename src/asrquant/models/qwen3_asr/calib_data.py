"""Qwen3-ASR calibration samples from a manifest of real audio.

Each clip becomes what the decoder sees when it transcribes that clip, so every decoding position
is calibrated and not only the prompt:

    the chat prompt with <|audio_pad|> expanded to the encoder length
    (+ ``language English<asr_text>`` when the clip names its language: the forced-language prompt)
    + the reference transcript's tokens (teacher forcing), or, where a clip has no text, the
      model's own greedy output (which then starts with its ``language X<asr_text>`` line)
    + <|im_end|>

The log-mel is the family's own (:func:`qwen3_asr_log_mel`, the whole clip, not padded to 30 s).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...quant.calibrate import CalibSample
from ...errors import AsrQuantError
from .features import n_audio_tokens, qwen3_asr_log_mel
from .load import Qwen3ASRCheckpoint
from .tokenizer import Qwen3ASRTokenizer


def _forced_language(clip) -> str | None:
    """The clip's language as qwen-asr names it, or None when the manifest gives none."""
    from .tokenizer import normalize_language

    if not clip.lang:
        return None
    try:
        return normalize_language(clip.lang)
    except ValueError as e:
        raise AsrQuantError(f"{clip.manifest}: clip {clip.id!r}: {e}") from None


def clip_tokens(tok: Qwen3ASRTokenizer, n_audio: int, language: str | None, text_ids: list[int]) -> list[int]:
    """Prompt (audio placeholders expanded, language forced or not) + transcript + <|im_end|>."""
    return tok.prompt_ids(n_audio, "", language) + list(text_ids) + [tok.specials.im_end]


def calibration_samples(ckpt: Qwen3ASRCheckpoint, manifest: str | Path, n: int, progress: bool = True):
    """(samples, Calibration) for ``n`` clips of ``manifest`` spread over it (every category seen)."""
    from ...artifact import sha256_file
    from ...audio import load_audio
    from ...eval.manifest import read_manifest
    from ..whisper.saved import Calibration, _progress, spread

    clips = read_manifest(manifest)
    chosen = [clips[i] for i in spread(len(clips), n)]
    tok = ckpt.tokenizer()
    greedy = None
    samples, cal = [], Calibration(str(manifest), [], [])
    for clip in _progress(chosen, progress, "calibration clips"):
        audio = load_audio(clip.audio)
        try:
            mel = qwen3_asr_log_mel(audio, ckpt.dims.n_mels)
        except ValueError as e:
            raise AsrQuantError(f"{clip.audio}: {e}") from None
        language = _forced_language(clip)
        if clip.text.strip():
            text_ids = tok.encode(clip.text.strip())
        else:
            greedy = greedy or _greedy_transcriber(ckpt, tok)
            text_ids = greedy.transcribe(audio, language).result.tokens
        n_audio = n_audio_tokens(mel.shape[1], ckpt.dims.n_window)
        tokens = clip_tokens(tok, n_audio, language, text_ids)
        samples.append(CalibSample(mel, np.asarray(tokens, dtype=np.int64)))
        cal.ids.append(clip.id)
        cal.audio_sha256.append(sha256_file(clip.audio))
    return samples, cal


def _greedy_transcriber(ckpt: Qwen3ASRCheckpoint, tok: Qwen3ASRTokenizer):
    """The float model's own transcriber (for clips without a reference)."""
    from .torch_session import Qwen3ASRTorchSession, Qwen3ASRTranscriber

    return Qwen3ASRTranscriber(Qwen3ASRTorchSession(ckpt.model), tok, ckpt.dims.n_window, ckpt.dims.n_mels)
