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

from typing import Iterator

import torch

from ...quant.calibrate import CalibBlock, CalibSample, InputGroup, register_adapter
from ...errors import AsrQuantError
from .model import Qwen3ASR, chunk_mel


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
                raise AsrQuantError(f"calibration sample {i}: mel must be [{d.n_mels}, frames], got {list(smp.mel.shape)}")
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

        # The front end: its only Linear (conv_out) reads the flattened convolution output.
        embed = lambda: [tower.embed(c, n) for c, n in clips]  # noqa: E731
        yield CalibBlock("audio_tower.conv_out", embed, [InputGroup(["audio_tower.conv_out"])])
        xs = embed()
        for i, layer in enumerate(tower.layers):
            p = f"audio_tower.layers.{i}"
            run = lambda layer=layer: [(layer(x, m), m) for x, m in xs]  # noqa: E731
            yield CalibBlock(p, run, _audio_layer_groups(p))
            xs = run()
        head = lambda: [tower.head(x)[:n] for (x, _), (_, n) in zip(xs, clips)]  # noqa: E731
        yield CalibBlock("audio_tower.head", head,
                         [InputGroup(["audio_tower.proj1"], "audio_tower.ln_post"), InputGroup(["audio_tower.proj2"])])
        audio = head()
        del xs, clips

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
            yield CalibBlock(p, lambda i=i, layer=layer: run_layer(i, layer), _decoder_layer_groups(p))
            hs = run_layer(i, layer)


register_adapter(Qwen3ASR, Qwen3ASRCalibAdapter)
