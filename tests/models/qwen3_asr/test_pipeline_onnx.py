"""End to end on the small random Qwen3-ASR: quantize with two recipes, export the three graphs
with MatMulNBits, run the torch-free session: greedy tokens identical to torch fake-quant."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")

from asrquant.decoding import DecodeOptions, decode  # noqa: E402
from asrquant.models.qwen3_asr.features import qwen3_asr_log_mel  # noqa: E402
from asrquant.models.qwen3_asr.onnx_graphs import export_graphs, save_graphs  # noqa: E402
from asrquant.models.qwen3_asr.onnx_session import Qwen3ASROnnxSession  # noqa: E402
from asrquant.models.qwen3_asr.torch_session import Qwen3ASRTorchSession, qwen3_asr_rules  # noqa: E402
from asrquant.quant.calibrate import quantize_model  # noqa: E402
from asrquant.quant.recipe import load_recipe  # noqa: E402

from .qwen3_asr_fixture import random_model, small_dims, tone  # noqa: E402
from .test_pipeline_calib import calib_samples  # noqa: E402

EOS = (151645, 151643)
OPTS = DecodeOptions(max_new_tokens=16, loop_guard=False)


def _greedy(session, mel, dims):
    n = dims.n_audio_tokens(mel.shape[1])
    prompt = [151644, 198, dims.audio_start_token_id] + [dims.audio_token_id] * n + [dims.audio_end_token_id, 198]
    return decode(session, session.encode(mel), prompt, qwen3_asr_rules(EOS), OPTS)


@pytest.mark.parametrize("recipe", ["gptq-int4-g64", "mixed-8attn-4mlp"])
def test_onnx_runner_tokens_equal_torch_fake_quant(tmp_path, recipe):
    model = random_model(small_dims(tie=False), seed=5)
    report = quantize_model(model, load_recipe(recipe), calib_samples(model.dims), progress=False, device="cpu")
    protos, _ = export_graphs(model)
    for graph, prefix in (("encoder", "audio_tower."), ("decoder_prefill", "model."), ("decoder_step", "model.")):
        packed = sorted(n.name for n in protos[graph].graph.node if n.op_type == "MatMulNBits")
        want = sorted(f"/{l.name}/MatMulNBits" for l in report.layers if l.name.startswith(prefix))
        assert packed == want and want  # every quantized Linear of the graph is a MatMulNBits
    onnx_session = Qwen3ASROnnxSession(save_graphs(protos, tmp_path)["encoder"].parent)
    torch_session = Qwen3ASRTorchSession(model)
    for i, seconds in enumerate((0.9, 2.3, 9.4)):  # one short chunk .. several chunks, two windows
        mel = qwen3_asr_log_mel(tone(seconds, seed=10 + i))
        want = _greedy(torch_session, mel, model.dims)
        got = _greedy(onnx_session, mel, model.dims)
        assert len(want.tokens) > 0
        assert got.tokens == want.tokens
        assert got.stopped == want.stopped
