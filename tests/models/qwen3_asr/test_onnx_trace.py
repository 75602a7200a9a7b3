"""Qwen3-ASR is written to trace: the encoder, the decoder prefill (audio scatter inside the
graph) and the decoder step export to ONNX with dynamic lengths and run in onnxruntime with
the torch model's numbers, on shapes other than the ones traced. (The exporters and runner of
the pipeline build on this; this only guards the model code.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from asrquant.models.qwen3_asr.features import chunk_mel, qwen3_asr_log_mel  # noqa: E402

from .qwen3_asr_fixture import random_model, small_dims, tone  # noqa: E402


class _Encoder(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, chunks, n_tokens):
        return self.m.audio_tower(chunks, n_tokens)


class _Prefill(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, audio):
        k, v = self.m.empty_cache(1)
        return self.m.decode_embeds(self.m.prompt_embeds(input_ids, audio), k, v)


class _Step(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, tokens, past_k, past_v, offset):
        return self.m.decode_tokens(tokens, past_k, past_v, offset)


def _export(module, args, path, names, outputs, axes):
    torch.onnx.export(module, args, str(path), input_names=names, output_names=outputs, dynamic_axes=axes,
                      dynamo=False, opset_version=17)  # fmt: skip
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@torch.no_grad()
def test_encoder_prefill_step_trace_to_onnx(tmp_path):
    m = random_model(small_dims(tie=False), seed=1)
    chunks, n = chunk_mel(qwen3_asr_log_mel(tone(9.0)))
    enc = _export(_Encoder(m), (torch.from_numpy(chunks), torch.tensor(n)), tmp_path / "enc.onnx",
                  ["chunks", "n_tokens"], ["audio"],
                  {"chunks": {0: "n_chunks", 2: "width"}, "audio": {0: "n"}})  # fmt: skip
    audio = m.encode(torch.from_numpy(qwen3_asr_log_mel(tone(9.0))))
    ids = torch.tensor([[151644, 10, 151669] + [151676] * n + [151670, 10, 20]])
    _, k, v = m.prefill(ids, audio)
    axes = {"input_ids": {1: "t"}, "audio": {0: "n"}, "logits": {1: "t"}, "k": {3: "t"}, "v": {3: "t"}}
    pre = _export(_Prefill(m), (ids, audio), tmp_path / "prefill.onnx",
                  ["input_ids", "audio"], ["logits", "k", "v"], axes)
    step = _export(_Step(m), (torch.tensor([[5]]), k, v, torch.tensor(ids.shape[1])), tmp_path / "step.onnx",
                   ["tokens", "past_k", "past_v", "offset"], ["logits", "k", "v"],
                   {"past_k": {3: "n_past"}, "past_v": {3: "n_past"}})  # fmt: skip

    for seconds in (0.7, 20.3):  # one short chunk; three attention windows
        mel = qwen3_asr_log_mel(tone(seconds, seed=3))
        chunks, n = chunk_mel(mel)
        got = enc.run(None, {"chunks": chunks, "n_tokens": np.array(n)})[0][:n]
        want = m.encode(torch.from_numpy(mel))
        assert np.abs(got - want.numpy()).max() < 1e-4
        ids = torch.tensor([[151644, 10, 151669] + [151676] * n + [151670, 10, 20, 30]])
        logits, k, v = pre.run(None, {"input_ids": ids.numpy(), "audio": got})
        rl, rk, rv = m.prefill(ids, want)
        assert np.abs(logits - rl.numpy()).max() < 1e-3
        sl, sk, sv = step.run(None, {"tokens": np.array([[7]]), "past_k": k, "past_v": v,
                                     "offset": np.array(ids.shape[1])})
        tl, tk, tv = m.decode_tokens(torch.tensor([[7]]), rk, rv)
        assert np.abs(sl - tl.numpy()).max() < 1e-3 and np.abs(sk - tk.numpy()).max() < 1e-4
