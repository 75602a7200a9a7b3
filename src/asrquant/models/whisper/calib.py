"""Whisper's calibration adapter: the order in which blocks see real audio.

Encoder blocks run on the clips' log-mels (in batches). Then the decoder blocks run teacher
forced on each clip's token sequence (prompt + reference transcript + end), every position at
once under the causal mask, which gives each position exactly the activations it has when it
is decoded step by step with a filled KV cache; cross-attention reads the output of the
already quantized encoder. Last, the output projection: the final LayerNorm's output, which
multiplies the tied token table. Only the current block's inputs (and, for the decoder, the audio
features) are held.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ...artifact import sha256_file
from ...audio import load_audio
from ...decoding import DecodeOptions, LogitRules, decode
from ...errors import AsrQuantError
from ...eval.manifest import read_manifest
from ...features import log_mel
from ...progress import track
from ...quant.calibrate import CalibBlock, Calibration, CalibSample, InputGroup, spread, warn_single_language
from ...quant.recipe import Recipe
from ...quant.threads import one_cpu_thread
from .load import WhisperCheckpoint
from .model import Whisper
from .tokenizer import WhisperTokenizer
from .torch_session import WhisperTorchSession, open_transcriber
from .transcribe import WINDOW_SAMPLES


def _attn_groups(prefix: str, attn: str, norm: str, self_fed: bool = True) -> list[InputGroup]:
    p = f"{prefix}.{attn}"
    if self_fed:
        return [InputGroup([f"{p}.query", f"{p}.key", f"{p}.value"], f"{prefix}.{norm}"), InputGroup([f"{p}.out"])]
    return [InputGroup([f"{p}.query"], f"{prefix}.{norm}"), InputGroup([f"{p}.key", f"{p}.value"]),
            InputGroup([f"{p}.out"])]


def _mlp_groups(prefix: str) -> list[InputGroup]:
    return [InputGroup([f"{prefix}.mlp.fc1"], f"{prefix}.mlp_ln"), InputGroup([f"{prefix}.mlp.fc2"])]


class WhisperCalibAdapter:
    def __init__(self, model: Whisper, samples: list[CalibSample], device=None, batch_size: int = 4):
        self.model = model
        self.samples = samples
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.batch_size = max(1, batch_size)
        d = model.dims
        for i, smp in enumerate(samples):
            if smp.mel.ndim != 2 or smp.mel.shape[0] != d.n_mels or smp.mel.shape[1] > 2 * d.n_audio_ctx:
                raise AsrQuantError(
                    f"calibration sample {i}: mel must be [{d.n_mels}, <= {2 * d.n_audio_ctx}], "
                    f"got {list(smp.mel.shape)}"
                )
            if smp.tokens.ndim != 1 or not 0 < len(smp.tokens) <= d.n_text_ctx:
                raise AsrQuantError(
                    f"calibration sample {i}: tokens must be 1..{d.n_text_ctx} ids, got shape {list(smp.tokens.shape)}"
                )

    def _mel_batches(self) -> list[torch.Tensor]:
        """Consecutive samples of equal mel shape stacked, at most ``batch_size`` each."""
        out, cur = [], []
        for s in self.samples:
            mel = torch.as_tensor(s.mel, dtype=torch.float32)
            if cur and (len(cur) == self.batch_size or cur[0].shape != mel.shape):
                out.append(torch.stack(cur))
                cur = []
            cur.append(mel)
        if cur:
            out.append(torch.stack(cur))
        return out

    def blocks(self) -> Iterator[CalibBlock]:
        enc, dec = self.model.encoder, self.model.decoder
        xs = []
        for mel in self._mel_batches():
            x = F.gelu(enc.conv1(mel.to(self.device)))
            x = F.gelu(enc.conv2(x)).transpose(1, 2)
            xs.append(x + enc.positional_embedding[: x.shape[1]])

        def enc_one(block, rows, i, positions):
            x = rows[i]
            return block(x) if positions is None else block.forward_at(x, positions)

        for i, block in enumerate(enc.blocks):
            p = f"encoder.blocks.{i}"
            rows = [x[j : j + 1] for x in xs for j in range(x.shape[0])]  # views: one clip each
            yield CalibBlock(p, lambda b=block: [b(x) for x in xs], _attn_groups(p, "attn", "attn_ln") + _mlp_groups(p),
                             lambda j, pos, b=block, rows=rows: enc_one(b, rows, j, pos))
            xs = [block(x) for x in xs]

        audio = [a[None] for x in xs for a in enc.ln_post(x)]  # per sample [1, ctx, d]
        xs = None  # freed: the blocks that read it have run (a del would unbind their closures)
        hs = []
        for s in self.samples:
            tok = torch.as_tensor(s.tokens, dtype=torch.long, device=self.device)[None]
            hs.append(dec.token_embedding(tok) + dec.positional_embedding[: tok.shape[1]])

        def dec_one(block, h, a):
            t = h.shape[1]
            mask = torch.ones(t, t, dtype=torch.bool, device=h.device).tril() if t > 1 else None
            empty = h.new_zeros(1, 0, h.shape[2])
            ck, cv = block.cross_attn.key(a), block.cross_attn.value(a)
            # On one thread: a Linear over a few tokens takes another GEMM path at another thread
            # count (other last bits, other GPTQ roundings downstream); these products are small.
            with one_cpu_thread(h.device):
                return block(h, empty, empty, ck, cv, mask)[0]

        def run(block, hs):
            return [dec_one(block, h, a) for h, a in zip(hs, audio)]

        for i, block in enumerate(dec.blocks):
            p = f"decoder.blocks.{i}"
            groups = _attn_groups(p, "attn", "attn_ln") + _attn_groups(p, "cross_attn", "cross_attn_ln", False)
            yield CalibBlock(p, lambda b=block: run(b, hs), groups + _mlp_groups(p),
                             lambda j, _pos, b=block, hs=hs: dec_one(b, hs[j], audio[j]))
            hs = run(block, hs)

        # The logits: decoder.ln's output times the tied token table (quantized by GPTQ on these
        # final hidden states when the recipe asks; otherwise nothing is run here).
        yield CalibBlock("decoder.ln", lambda: [dec.ln(h) for h in hs],
                         [InputGroup(["decoder.token_embedding"], "decoder.ln")], lambda j, _pos: dec.ln(hs[j]))


CalibAdapter = WhisperCalibAdapter  # the name asrquant.families' callers look up


def check_recipe(recipe: Recipe) -> None:
    """Every recipe applies to Whisper (its tied token table may be quantized)."""


def calibration_samples(ckpt: WhisperCheckpoint, manifest: str | Path, n: int,
                        progress: bool = True, decode: bool = True) -> tuple[list[CalibSample], Calibration]:
    """Log-mels of ``n`` clips and the tokens the decoder sees for each: the prompt, then the
    reference transcript (teacher forcing) or, where a clip has none, the model's own greedy
    output, then the end token — so every decoding position is calibrated, not only the prompt.
    ``decode=False`` skips that greedy decoding (prompt and end token only) for callers that use
    the log-mels alone."""
    clips = read_manifest(manifest)
    chosen = [clips[i] for i in spread(len(clips), n)]
    if ckpt.multilingual:  # an .en model hears English only
        warn_single_language(manifest, [c.lang for c in chosen])
    tok = WhisperTokenizer(ckpt.tokenizer_json, ckpt.multilingual)
    transcriber = None
    samples, cal = [], Calibration(str(manifest), [], [])
    for clip in track(chosen, progress, "calibration clips"):
        audio = load_audio(clip.audio)[:WINDOW_SAMPLES]
        prompt = tok.prompt(clip.lang or "en" if ckpt.multilingual else None)
        if clip.text.strip():
            text_ids = tok.encode(" " + clip.text.strip())
        elif not decode:
            text_ids = []
        else:
            transcriber = transcriber or open_transcriber(ckpt)
            text_ids = transcriber.transcribe(audio, clip.lang).tokens
        tokens = (prompt + text_ids)[: ckpt.dims.n_text_ctx - 1] + [tok.eot]
        samples.append(CalibSample(log_mel(audio, n_mels=ckpt.dims.n_mels), np.asarray(tokens, dtype=np.int64),
                                   len(prompt)))
        cal.ids.append(clip.id)
        cal.audio_sha256.append(sha256_file(clip.audio))
    return samples, cal


ENCODER_PREFIX = "encoder."  # the modules encoder_features runs: a tensor elsewhere leaves them unchanged


def _device(model: Whisper, device):
    return torch.device(device) if device is not None else next(model.parameters()).device


def encoder_features(model: Whisper, sample: CalibSample, device=None) -> torch.Tensor:
    """The encoder's output [1, ctx, d] for the sample: what the decoder reads (held by callers that
    change only decoder tensors, such as the sensitivity measurement, instead of re-encoding)."""
    dev = _device(model, device)
    return model.encoder(torch.as_tensor(sample.mel, dtype=torch.float32, device=dev)[None])


def logits_from_features(model: Whisper, sample: CalibSample, features: torch.Tensor, device=None) -> torch.Tensor:
    """The logits [T, V] at every position of the sample's tokens given the encoder's output."""
    dev = _device(model, device)
    tokens = torch.as_tensor(sample.tokens, dtype=torch.long, device=dev)[None]
    cross_k, cross_v = model.decoder.cross_kv(features)
    past_k, past_v = model.decoder.empty_cache(1, dev)
    return model.decoder(tokens, past_k, past_v, cross_k, cross_v)[0][0]


def teacher_forced_logits(model: Whisper, sample: CalibSample, device=None) -> torch.Tensor:
    """The logits [T, V] at every position of the sample's tokens, with gradients (refinements)."""
    return logits_from_features(model, sample, encoder_features(model, sample, device), device)


# A real Whisper vocabulary ends with its 1501 timestamp tokens (<|0.00|> .. <|30.00|>), whatever its
# languages; transcription without timestamps never emits them.
N_TIMESTAMPS = 1501


def free_running_tokens(model: Whisper, sample: CalibSample, max_new: int = 224) -> list[int]:
    """The tokens the model generates greedily after the sample's prompt, as transcription decodes
    (no timestamps, the loop guard on; the checkpoint's suppressed symbols aside): a refinement's
    free-running check (dwq's ``check = "greedy"``), on the model's device."""
    if sample.prompt < 1:
        raise ValueError("the calibration sample does not say where its prompt ends")
    session = WhisperTorchSession(model)
    n_vocab = model.dims.n_vocab
    timestamps = n_vocab - N_TIMESTAMPS if n_vocab > N_TIMESTAMPS else None  # a test's small vocabulary has none
    rules = LogitRules(eot=int(sample.tokens[-1]), suppress_from=timestamps)
    prompt = [int(t) for t in sample.tokens[: sample.prompt]]
    return decode(session, session.encode(sample.mel), prompt, rules, DecodeOptions(max_new_tokens=max_new)).tokens
