"""Qwen3-ASR's calibration adapter: the order in which blocks see real audio.

The audio encoder runs per clip: its convolution front end (``conv_out`` is a Linear), then
each encoder layer over the clip's attention windows (padded keys masked), then the head
(``proj1`` / ``proj2``). The decoder layers then run teacher forced on each clip's whole
sequence (the prompt with one <|audio_pad|> per encoder token, the reference transcript and
the end token) with the quantized encoder's audio embeddings scattered over the placeholders,
every position at once under the causal mask: each position sees exactly the activations it
has when decoded step by step with a filled KV cache. Only the current block's inputs are held.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ...artifact import sha256_file
from ...audio import load_audio
from ...errors import AsrQuantError
from ...eval.manifest import read_manifest
from ...progress import track
from ...quant.calibrate import CalibBlock, Calibration, CalibSample, InputGroup, spread, warn_single_language
from ...quant.recipe import Recipe
from ...quant.threads import one_cpu_thread
from .features import n_audio_tokens, qwen3_asr_log_mel
from .load import Qwen3ASRCheckpoint
from .model import Qwen3ASR, chunk_mel
from .tokenizer import Qwen3ASRTokenizer, normalize_language
from .torch_session import Qwen3ASRTorchSession
from .transcribe import Qwen3ASRTranscriber


def _audio_layer_groups(p: str) -> list[InputGroup]:
    a = f"{p}.self_attn"
    return [
        InputGroup([f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj"], f"{p}.self_attn_layer_norm"),
        InputGroup([f"{a}.out_proj"]),
        InputGroup([f"{p}.fc1"], f"{p}.final_layer_norm"),
        InputGroup([f"{p}.fc2"]),
    ]


def _decoder_layer_groups(p: str) -> list[InputGroup]:
    a, m = f"{p}.self_attn", f"{p}.mlp"
    return [
        InputGroup([f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj"], f"{p}.input_layernorm"),
        InputGroup([f"{a}.o_proj"]),
        InputGroup([f"{m}.gate_proj", f"{m}.up_proj"], f"{p}.post_attention_layernorm"),
        InputGroup([f"{m}.down_proj"]),
    ]


class Qwen3ASRCalibAdapter:
    def __init__(self, model: Qwen3ASR, samples: list[CalibSample], device=None, batch_size: int = 4):
        self.model = model
        self.samples = samples
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        d = model.dims
        for i, smp in enumerate(samples):
            if smp.mel.ndim != 2 or smp.mel.shape[0] != d.n_mels or smp.mel.shape[1] < 1:
                raise AsrQuantError(
                    f"calibration sample {i}: mel must be [{d.n_mels}, frames], got {list(smp.mel.shape)}"
                )
            want = d.n_audio_tokens(smp.mel.shape[1])
            got = int((smp.tokens == d.audio_token_id).sum()) if smp.tokens.ndim == 1 else -1
            if got != want:
                raise AsrQuantError(
                    f"calibration sample {i}: tokens must be one sequence holding {want} <|audio_pad|> "
                    f"(id {d.audio_token_id}) for {smp.mel.shape[1]} mel frames, got {got}"
                )

    def blocks(self) -> Iterator[CalibBlock]:
        tower, text = self.model.audio_tower, self.model.model
        clips = [chunk_mel(torch.as_tensor(s.mel, dtype=torch.float32, device=self.device), self.model.dims)
                 for s in self.samples]  # fmt: skip

        def one_thread(fn):
            # Every pass on one thread: at another thread count a product over an attention window's
            # few frames or a few tokens takes another GEMM path (other last bits, so other GPTQ
            # roundings downstream: with a 384-wide random model every Linear after the first
            # encoder layer differed between 1 and 2 threads). The Hessians already are.
            def run():
                with one_cpu_thread(self.device):
                    return fn()
            return run

        # The front end: its only Linear (conv_out) reads the flattened convolution output.
        embed = one_thread(lambda: [tower.embed(c, n) for c, n in clips])
        yield CalibBlock("audio_tower.conv_out", embed, [InputGroup(["audio_tower.conv_out"])])
        xs = embed()
        for i, layer in enumerate(tower.layers):
            p = f"audio_tower.layers.{i}"
            run = one_thread(lambda layer=layer: [(layer(x, m), m) for x, m in xs])
            yield CalibBlock(p, run, _audio_layer_groups(p))
            xs = run()
        head = one_thread(lambda: [tower.head(x)[:n] for (x, _), (_, n) in zip(xs, clips)])
        yield CalibBlock("audio_tower.head", head,
                         [InputGroup(["audio_tower.proj1"], "audio_tower.ln_post"), InputGroup(["audio_tower.proj2"])])
        audio = head()
        xs = clips = None  # freed: the blocks that read them have run (a del would unbind their closures)

        hs = []
        for s, a in zip(self.samples, audio):
            ids = torch.as_tensor(s.tokens, dtype=torch.long, device=self.device)[None]
            hs.append(self.model.prompt_embeds(ids, a))
        del audio
        empty_k, empty_v = self.model.empty_cache(1, self.device)

        def run_layer(i: int, layer) -> list[torch.Tensor]:
            out = []
            for h in hs:
                t = h.shape[1]
                cos, sin = text.rotary(torch.arange(t, device=h.device))
                out.append(layer(h, cos, sin, empty_k[i], empty_v[i], text.causal_mask(t, 0, h.device))[0])
            return out

        for i, layer in enumerate(text.layers):
            p = f"model.layers.{i}"
            run = one_thread(lambda i=i, layer=layer: run_layer(i, layer))
            yield CalibBlock(p, run, _decoder_layer_groups(p))
            hs = run()


CalibAdapter = Qwen3ASRCalibAdapter  # the name asrquant.families' callers look up
TABLE = "model.embed_tokens"  # the token table; its tied lm_head reads the same Parameter


def check_recipe(recipe: Recipe) -> None:
    """Refuse, before loading a model of billions of weights, what this family cannot carry."""
    if recipe.embedding_rule_for(TABLE) is not None:
        raise AsrQuantError(f"recipe {recipe.name!r}: its [embedding] matches {TABLE}; Qwen3-ASR's token table "
                            f"stays float (the saved format and the exporters do not carry a quantized one yet)")


# ---- calibration samples ------------------------------------------------------------------------
#
# Qwen3-ASR calibration samples from a manifest of real audio.
#
# Each clip becomes what the decoder sees when it transcribes that clip, so every decoding position
# is calibrated and not only the prompt:
#
#     the chat prompt with <|audio_pad|> expanded to the encoder length
#     (+ ``language English<asr_text>`` when the clip names its language: the forced-language prompt)
#     + the reference transcript's tokens (teacher forcing), or, where a clip has no text, the
#       model's own greedy output (which then starts with its ``language X<asr_text>`` line)
#     + <|im_end|>
#
# The log-mel is the family's own (:func:`qwen3_asr_log_mel`, the whole clip, not padded to 30 s).


def _forced_language(clip) -> str | None:
    """The clip's language as qwen-asr names it, or None when the manifest gives none."""
    if not clip.lang:
        return None
    try:
        return normalize_language(clip.lang)
    except ValueError as e:
        raise AsrQuantError(f"{clip.manifest}: clip {clip.id!r}: {e}") from None


def clip_tokens(tok: Qwen3ASRTokenizer, n_audio: int, language: str | None, text_ids: list[int]) -> list[int]:
    """Prompt (audio placeholders expanded, language forced or not) + transcript + <|im_end|>."""
    return tok.prompt_ids(n_audio, "", language) + list(text_ids) + [tok.specials.im_end]


def calibration_samples(ckpt: Qwen3ASRCheckpoint, manifest: str | Path, n: int, progress: bool = True,
                        decode: bool = True) -> tuple[list[CalibSample], Calibration]:
    """(samples, Calibration) for ``n`` clips of ``manifest`` spread over it (every category seen).
    ``decode=False`` skips the greedy decoding of clips without a transcript (prompt and end only)."""
    clips = read_manifest(manifest)
    chosen = [clips[i] for i in spread(len(clips), n)]
    warn_single_language(manifest, [c.lang for c in chosen])  # every Qwen3-ASR is multilingual
    tok = ckpt.tokenizer()
    greedy = None
    samples, cal = [], Calibration(str(manifest), [], [])
    for clip in track(chosen, progress, "calibration clips"):
        audio = load_audio(clip.audio)
        try:
            mel = qwen3_asr_log_mel(audio, ckpt.dims.n_mels)
        except ValueError as e:
            raise AsrQuantError(f"{clip.audio}: {e}") from None
        language = _forced_language(clip)
        if clip.text.strip():
            text_ids = tok.encode(clip.text.strip())
        elif not decode:
            text_ids = []
        else:
            greedy = greedy or _greedy_transcriber(ckpt, tok)
            text_ids = greedy.transcribe(audio, language).result.tokens
        n_audio = n_audio_tokens(mel.shape[1], ckpt.dims.n_window)
        tokens = clip_tokens(tok, n_audio, language, text_ids)
        samples.append(CalibSample(mel, np.asarray(tokens, dtype=np.int64), len(tokens) - len(text_ids) - 1))
        cal.ids.append(clip.id)
        cal.audio_sha256.append(sha256_file(clip.audio))
    return samples, cal


def _greedy_transcriber(ckpt: Qwen3ASRCheckpoint, tok: Qwen3ASRTokenizer):
    """The float model's own transcriber (for clips without a reference)."""
    return Qwen3ASRTranscriber(Qwen3ASRTorchSession(ckpt.model), tok, ckpt.dims.n_window, ckpt.dims.n_mels)


def teacher_forced_logits(model: Qwen3ASR, sample: CalibSample, device=None) -> torch.Tensor:
    """The logits [T, V] at every position of the sample's sequence, with gradients (refinements)."""
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    mel = torch.as_tensor(sample.mel, dtype=torch.float32, device=dev)
    ids = torch.as_tensor(sample.tokens, dtype=torch.long, device=dev)[None]
    return model.prefill(ids, model.encode(mel))[0][0]


@torch.no_grad()
def free_running_tokens(model: Qwen3ASR, sample: CalibSample, max_new: int = 224) -> list[int]:
    """The tokens the model generates greedily after the sample's prompt, up to its end token (not
    included): a refinement's free-running check (dwq's ``check = "greedy"``), on the model's device."""
    if sample.prompt < 1:
        raise ValueError("the calibration sample does not say where its prompt ends")
    dev = next(model.parameters()).device
    end = int(sample.tokens[-1])
    mel = torch.as_tensor(sample.mel, dtype=torch.float32, device=dev)
    out = model.greedy(mel, [int(t) for t in sample.tokens[: sample.prompt]], (end,), max_new)
    return out[:-1] if out and out[-1] == end else out
