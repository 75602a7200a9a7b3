"""Qwen3-ASR to ONNX: an encoder graph, a decoder-prefill graph (the audio embeddings scattered
over the <|audio_pad|> placeholders inside the graph) and a decoder-step graph with the KV cache
in and out; every quantized Linear becomes a MatMulNBits packed from the one quantized
representation (the same rewrite as the Whisper export).

Graph signatures (float32 unless said):
    encoder:          chunks [n_chunks, n_mels, W], n_tokens int64 [] -> audio [n_chunks * 13, hidden]
    decoder_prefill:  input_ids int64 [b, t], audio [n_audio, hidden] -> logits [b, t, V], k, v
    decoder_step:     tokens int64 [b, 1], past_k, past_v [n_layers, b, kv, n_past, hd], offset int64 []
                      -> logits [b, 1, V], k, v (the new position's keys/values; append on axis 3)

:func:`export_onnx` writes them as an artifact directory of the same layout as a
Whisper export (:mod:`.onnx_layout`, manifest family "qwen3-asr"): encoder.onnx + encoder.onnx.data,
decoder_prefill.onnx + decoder_step.onnx sharing decoder.onnx.data (the decoder weights stored
once), config.json, tokenizer.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from ...errors import AsrQuantError
from ...export.onnx.artifact import float16_storage, write_onnx_artifact
from ...export.onnx.graphs import (
    OPSET,
    decoder_accuracy_level,
    export_copy,
    linear_schemes,
    pack_linears,
    quantize_graphs,
    quantized_linears,
    trace,
    variant_info,
)
from ...export.onnx.int8_choice import COST_CLIPS, Int8Costs, check_int8_skip, choose_float, measure
from ...export.onnx.int8_choice import record as record_int8_choice
from ...export.onnx.int8_matmul import graph_linears
from .calib import calibration_samples
from .detect import FAMILY
from .model import Qwen3ASR, chunk_mel

GRAPHS = ("encoder", "decoder_prefill", "decoder_step")


def _with_forward(m: Qwen3ASR, forward) -> Qwen3ASR:
    """``m`` itself with another forward, so traced initializers keep the module names
    (``audio_tower.layers.0.fc1.weight_t``) that the MatMulNBits rewrite looks for."""
    m.forward = forward
    return m


def _encoder(m: Qwen3ASR):
    return lambda chunks, n_tokens: m.audio_tower(chunks, n_tokens)


def _prefill(m: Qwen3ASR):
    def forward(input_ids, audio):
        k, v = m.empty_cache(input_ids.shape[0])
        return m.decode_embeds(m.prompt_embeds(input_ids, audio), k, v)

    return forward


def _step(m: Qwen3ASR):
    return lambda tokens, past_k, past_v, offset: m.decode_tokens(tokens, past_k, past_v, offset)


def trace_graphs(model: Qwen3ASR) -> dict[str, onnx.ModelProto]:
    """The three float graphs (fake-quant Linears traced with their dequantized weights).

    Example sizes differ from one another (batch 2, 5 prompt tokens, 3 cached) so that no
    dynamic dimension is traced as a constant."""
    m = export_copy(model)
    d = m.dims
    with torch.no_grad():
        chunks, n = chunk_mel(torch.zeros(d.n_mels, 2 * d.chunk_frames - 7), d)
        enc = trace(_with_forward(m, _encoder(m)), (chunks, torch.tensor(n)), ["chunks", "n_tokens"], ["audio"],
                     {"chunks": {0: "n_chunks", 2: "width"}, "audio": {0: "n_rows"}})  # fmt: skip
        audio = torch.zeros(3, d.hidden_size)
        ids = torch.tensor([[1, d.audio_token_id, d.audio_token_id, d.audio_token_id, 2]] * 2)
        cache_axes = {3: "n_past"}
        pre = trace(_with_forward(m, _prefill(m)), (ids, audio), ["input_ids", "audio"], ["logits", "k", "v"],
                     {"input_ids": {0: "batch", 1: "t"}, "audio": {0: "n_audio"}, "logits": {0: "batch", 1: "t"},
                      "k": {1: "batch", 3: "t"}, "v": {1: "batch", 3: "t"}})  # fmt: skip
        pk = torch.zeros(d.n_layers, 2, d.n_kv_heads, 3, d.head_dim)
        step = trace(_with_forward(m, _step(m)), (torch.tensor([[5], [6]]), pk, pk.clone(), torch.tensor(3)),
                      ["tokens", "past_k", "past_v", "offset"], ["logits", "k", "v"],
                      {"tokens": {0: "batch"}, "past_k": {1: "batch", **cache_axes},
                       "past_v": {1: "batch", **cache_axes},
                       "logits": {0: "batch"}, "k": {1: "batch"}, "v": {1: "batch"}})  # fmt: skip
    return {"encoder": enc, "decoder_prefill": pre, "decoder_step": step}


def export_graphs(model: Qwen3ASR, accuracy_level: int | None = None, packed: dict | None = None,
                  compute: str = "float", choose_float=None) -> tuple[dict[str, onnx.ModelProto], dict[str, str]]:
    """The three graphs with every QuantLinear as a MatMulNBits (float Linears stay MatMul), and
    a tied float lm_head reading the embedding table instead of its own copy. With
    ``compute="int8"`` the audio encoder's Linears run in int8 (see :mod:`.int8_matmul`; the
    second value says where each one's int8 weight comes from, and an ``encoder_weights`` graph
    may join the three). ``choose_float``: the encoder graph's Linears -> those kept on float compute."""
    protos = trace_graphs(model)
    keep_float = choose_float(graph_linears(protos["encoder"])) if choose_float is not None else frozenset()
    int8 = quantize_graphs(protos, pack_linears(model) if packed is None else packed, accuracy_level, compute,
                           quantized_linears(model), keep_float=keep_float)
    for graph in ("decoder_prefill", "decoder_step"):
        share_tied_head(protos[graph])
    return protos, int8


TIED_HEAD, EMBEDDING = "lm_head.weight_t", "model.embed_tokens.weight"


def share_tied_head(proto: onnx.ModelProto) -> bool:
    """A tied lm_head traces as its own transposed copy of the token embedding; make the MatMul
    read the embedding through a Transpose instead, so the table (151936 x hidden, the largest
    tensor of the model) is stored once. onnxruntime folds the Transpose when it loads the graph.
    Returns whether the graph was changed (not when the head is quantized or untied)."""
    inits = {t.name: t for t in proto.graph.initializer}
    if TIED_HEAD not in inits or EMBEDDING not in inits:
        return False
    if not np.array_equal(numpy_helper.to_array(inits[TIED_HEAD]), numpy_helper.to_array(inits[EMBEDDING]).T):
        return False  # untied: two different tables
    proto.graph.initializer.remove(inits[TIED_HEAD])
    transpose = helper.make_node("Transpose", [EMBEDDING], [TIED_HEAD], name="/lm_head/tied/Transpose", perm=[1, 0])
    nodes = [transpose] + list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return True


def qwen3_asr_config(ckpt) -> dict:
    """What the torch-free runner needs besides the graphs and the tokenizer."""
    d = ckpt.dims
    return {
        "family": FAMILY,
        "variant": ckpt.variant,
        "dims": d.to_dict(),
        "n_mels": d.n_mels,
        "n_window": d.n_window,
        "n_window_infer": d.n_window_infer,
        "eos_ids": [int(i) for i in ckpt.eos_ids],
        "max_positions": d.max_position_embeddings,
        "opset": OPSET,
        "cache_layout": {"past_k": "[layer, batch, kv_head, n_past, head_dim]",
                         "past_v": "[layer, batch, kv_head, n_past, head_dim]"},
    }


def export_onnx(ckpt, out_dir, *, recipe=None, variant: str | None = None, accuracy_level: int | None = None,
                fp16: bool = False, compute: str = "float", calib: str | None = None, progress: bool = False,
                smooth: bool = False, int8_skip: int | None = None, float_model=None,
                int8_costs: Int8Costs | None = None) -> Path:
    """Trace ``ckpt.model`` (a Qwen3ASRCheckpoint's, possibly quantized in place by ``recipe``),
    pack its QuantLinears as MatMulNBits and write the artifact (or the variant) at ``out_dir``.
    The int8 audio encoder is not smoothed (``smooth`` is not used); ``calib`` serves ``int8_skip``:
    each encoder Linear's int8 cost is measured on its clips against ``float_model`` (or taken from
    ``int8_costs``) and the ``int8_skip`` costliest stay on float compute
    (:mod:`asrquant.export.onnx.int8_choice`)."""
    check_int8_skip(int8_skip, compute)
    packed = pack_linears(ckpt.model)
    choice = {}

    def keep_costliest(names: list[str]) -> frozenset[str]:
        if int8_costs is None:
            if not calib:
                raise AsrQuantError("--int8-skip measures each encoder Linear's int8 cost on calibration clips: "
                                    "give --calib")
            samples, cal = calibration_samples(ckpt, calib, COST_CLIPS, progress=progress)
            choice["costs"] = measure(ckpt.model, names, samples, cal.to_dict(), float_model, progress=progress)
        else:
            choice["costs"] = int8_costs
        choice["float"] = choose_float(choice["costs"], int8_skip, names)
        return choice["float"]

    protos, int8 = export_graphs(ckpt.model, accuracy_level, packed, compute,
                                 keep_costliest if int8_skip is not None else None)
    keep_float = choice.get("float", frozenset())
    accuracy_level = decoder_accuracy_level(accuracy_level, compute)
    float_dtype = "float16" if fp16 else "float32"
    if fp16:
        for proto in protos.values():
            float16_storage(proto)
    info = variant_info(recipe, accuracy_level, float_dtype,
                        linear_schemes(ckpt.model, packed, recipe, accuracy_level, float_dtype, int8, keep_float),
                        compute)
    if choice:
        record_int8_choice(info, choice["costs"], keep_float)
    source = {"model": ckpt.source, "sha256": ckpt.source_sha256, "format": ckpt.format}
    return write_onnx_artifact(out_dir, protos, config=qwen3_asr_config(ckpt), tokenizer_json=ckpt.tokenizer_json,
                               source=source, variant=variant, variant_info=info, family=FAMILY)


def save_graphs(protos: dict[str, onnx.ModelProto], out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, proto in protos.items():
        paths[name] = out / f"{name}.onnx"
        onnx.save(proto, str(paths[name]))
    return paths
