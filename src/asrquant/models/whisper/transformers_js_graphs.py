"""Whisper's graphs in the layout transformers.js and optimum's ONNX Runtime classes load.

    encoder_model         input_features [B, n_mels, 3000] -> last_hidden_state [B, 1500, D]
    decoder_model_merged  input_ids [B, T], encoder_hidden_states [B, 1500, D], use_cache_branch [1],
                          past_key_values.{i}.decoder.key / .value [B, H, P, dh],
                          past_key_values.{i}.encoder.key / .value [B, H, 1500 or 0, dh]
                          -> logits [B, T, V], present.{i}.decoder.key / .value [B, H, P + T, dh],
                             present.{i}.encoder.key / .value [B, H, 1500, dh]

The names and shapes are those transformers.js reads (``src/models.js``: ``decoderForward``,
``addPastKeyValues`` with empty [B, H, 0, dh] caches on the first call, ``getPastKeyValues``
keeping the first call's encoder keys/values). ``use_cache_branch`` picks, in one ``If`` node,
between the cross-attention keys/values the first call computes from ``encoder_hidden_states``
(else branch) and those the caller passes back (then branch): the decoder itself is one traced
graph that takes them as values, so the file holds its weights once. The self-attention cache
is concatenated (the layout's contract), not the preallocated buffer of :mod:`.onnx_graphs`.

The graphs are traced from the same export copy, packed by the same MatMulNBits code and stored
as float16 the same way as :mod:`.onnx_graphs`: the 4-bit weights are the recipe's codes.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import helper
from torch import Tensor, nn

from ...export.onnx.artifact import float16_storage
from ...export.onnx.graphs import export_copy, pack_linears, quantize_graphs, trace
from ...export.onnx.matmulnbits import replace_tied_embedding
from .model import Whisper
from .onnx_graphs import (
    EMBEDDING,
    ENCODER_QUERY_ROWS,
    TRACE_BATCH,
    TRACE_TOKENS,
    attend,
    attend_in_chunks,
    merge_heads,
    mlp_residual,
    pack_embedding,
    split_heads,
)

ENCODER, DECODER = "encoder_model", "decoder_model_merged"
CROSS_PREFIX = "cross_kv/"  # names inside the If's else branch (a subgraph may not reuse outer names)
TRACE_PAST = 2


def past_names(n_layer: int, prefix: str = "past_key_values") -> list[str]:
    """Per layer: decoder.key, decoder.value, encoder.key, encoder.value (transformers.js' order)."""
    return [f"{prefix}.{i}.{part}.{kv}" for i in range(n_layer) for part in ("decoder", "encoder")
            for kv in ("key", "value")]


class EncoderGraph(nn.Module):
    def __init__(self, m: Whisper):
        super().__init__()
        self.encoder, self.n_head = m.encoder, m.dims.n_audio_head

    def forward(self, input_features: Tensor):
        enc = self.encoder
        x = nn.functional.gelu(enc.conv1(input_features))
        x = nn.functional.gelu(enc.conv2(x)).transpose(1, 2)
        x = x + enc.positional_embedding
        for block in enc.blocks:
            h = block.attn_ln(x)
            q, k, v = (split_heads(p(h), self.n_head) for p in (block.attn.query, block.attn.key, block.attn.value))
            x = x + block.attn.out(merge_heads(attend_in_chunks(q, k.transpose(-1, -2), v, ENCODER_QUERY_ROWS)))
            x = mlp_residual(block, x)
        return enc.ln_post(x)


class CrossGraph(nn.Module):
    """The cross-attention keys/values of every decoder layer, [B, H, A, dh] each."""

    def __init__(self, m: Whisper):
        super().__init__()
        self.decoder, self.n_head = m.decoder, m.dims.n_text_head

    def forward(self, encoder_hidden_states: Tensor):
        out = []
        for b in self.decoder.blocks:
            out += [split_heads(b.cross_attn.key(encoder_hidden_states), self.n_head),
                    split_heads(b.cross_attn.value(encoder_hidden_states), self.n_head)]
        return tuple(out)


class DecoderGraph(nn.Module):
    """T tokens after P cached positions; returns the hidden states flattened to [B * T, D] (the
    logits Gemm on the tied embedding is added afterwards, see :func:`add_logits`)."""

    def __init__(self, m: Whisper):
        super().__init__()
        self.decoder, self.n_head = m.decoder, m.dims.n_text_head

    def forward(self, input_ids: Tensor, *caches: Tensor):
        dec = self.decoder
        t, past = input_ids.shape[1], caches[0].shape[2]
        new_pos = torch.arange(t) + past
        x = dec.token_embedding(input_ids) + dec.positional_embedding.index_select(0, new_pos)
        # query i (position past + i) sees every cached position and the new ones up to itself
        mask = torch.zeros(t, past + t).masked_fill(torch.arange(past + t)[None, :] > new_pos[:, None], float("-inf"))
        present = []
        for i, block in enumerate(dec.blocks):
            past_k, past_v, cross_k, cross_v = caches[4 * i : 4 * i + 4]
            h = block.attn_ln(x)
            q, k, v = (split_heads(p(h), self.n_head) for p in (block.attn.query, block.attn.key, block.attn.value))
            k, v = torch.cat([past_k, k], 2), torch.cat([past_v, v], 2)
            x = x + block.attn.out(merge_heads(attend(q, k.transpose(-1, -2), v, mask)))
            q = split_heads(block.cross_attn.query(block.cross_attn_ln(x)), self.n_head)
            x = x + block.cross_attn.out(merge_heads(attend(q, cross_k.transpose(-1, -2), cross_v)))
            x = mlp_residual(block, x)
            present += [k, v]
        x = dec.ln(x)
        return (x.reshape(-1, x.shape[-1]), *present)


def trace_encoder(m: Whisper) -> onnx.ModelProto:
    d = m.dims
    mel = torch.zeros(1, d.n_mels, 2 * d.n_audio_ctx)
    # The positional table stays stored (unlike .onnx_positions): onnxruntime-web has no float64 Sin/Cos.
    return trace(EncoderGraph(m), (mel,), ["input_features"], ["last_hidden_state"],
                 {"input_features": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"}})


def trace_cross(m: Whisper) -> onnx.ModelProto:
    d = m.dims
    n = d.n_text_layer
    names = [f"cross.{i}.{kv}" for i in range(n) for kv in ("key", "value")]
    hidden = torch.zeros(1, d.n_audio_ctx, d.n_audio_state)
    axes = {"encoder_hidden_states": {0: "batch_size"}, **{k: {0: "batch_size"} for k in names}}
    return trace(CrossGraph(m), (hidden,), ["encoder_hidden_states"], names, axes)


def trace_decoder(m: Whisper) -> onnx.ModelProto:
    """The decoder with the cross keys/values as inputs named ``present.{i}.encoder.*`` (the If
    node produces them under those names when the graphs are merged)."""
    d = m.dims
    n, h, dh = d.n_text_layer, d.n_text_head, d.n_text_state // d.n_text_head
    b = TRACE_BATCH
    ids = torch.zeros(b, TRACE_TOKENS, dtype=torch.long)
    caches, inputs, axes = [], ["input_ids"], {"input_ids": {0: "batch_size", 1: "decoder_sequence_length"}}
    for i in range(n):
        for name in (f"past_key_values.{i}.decoder.key", f"past_key_values.{i}.decoder.value"):
            caches.append(torch.randn(b, h, TRACE_PAST, dh))
            inputs.append(name)
            axes[name] = {0: "batch_size", 2: "past_decoder_sequence_length"}
        for name in (f"present.{i}.encoder.key", f"present.{i}.encoder.value"):
            caches.append(torch.randn(b, h, d.n_audio_ctx, dh))
            inputs.append(name)
            axes[name] = {0: "batch_size", 2: "encoder_sequence_length_out"}
    outputs = ["hidden"] + [f"present.{i}.decoder.{kv}" for i in range(n) for kv in ("key", "value")]
    axes.update({o: {0: "batch_size", 2: "past_decoder_sequence_length + 1"} for o in outputs[1:]})
    axes["hidden"] = {0: "batch_tokens"}
    return add_logits(trace(DecoderGraph(m), (ids, *caches), inputs, outputs, axes))


def add_logits(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``logits = Reshape(Gemm(hidden, E, transB=1), [B, T, -1])``: the tied embedding read by a
    Gemm, the form :func:`replace_tied_embedding` packs when the recipe quantized the table."""
    g = proto.graph
    g.node.extend([
        helper.make_node("Gemm", ["hidden", EMBEDDING], ["logits_2d"], name="/logits/Gemm", transB=1),
        helper.make_node("Shape", ["input_ids"], ["logits/ids_shape"], name="/logits/Shape"),
        helper.make_node("Constant", [], ["logits/minus_one"], name="/logits/Constant",
                         value=onnx.numpy_helper.from_array(np.array([-1], np.int64))),
        helper.make_node("Concat", ["logits/ids_shape", "logits/minus_one"], ["logits/shape"], name="/logits/Concat",
                         axis=0),
        helper.make_node("Reshape", ["logits_2d", "logits/shape"], ["logits"], name="/logits/Reshape"),
    ])
    logits = helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT,
                                           ["batch_size", "decoder_sequence_length", "vocab_size"])
    outputs = [logits if o.name == "hidden" else o for o in g.output]
    del g.output[:]
    g.output.extend(outputs)
    return proto


def _prefixed(graph: onnx.GraphProto, keep: set[str]) -> None:
    """Every name in ``graph`` (values, initializers, nodes) but ``keep`` gets CROSS_PREFIX."""
    def rename(name: str) -> str:
        return name if not name or name in keep else CROSS_PREFIX + name

    for node in graph.node:
        node.name = CROSS_PREFIX + node.name
        node.input[:] = [rename(x) for x in node.input]
        node.output[:] = [rename(x) for x in node.output]
    for t in graph.initializer:
        t.name = rename(t.name)
    for v in [*graph.output, *graph.value_info]:
        v.name = rename(v.name)


def merge(decoder: onnx.ModelProto, cross: onnx.ModelProto, n_layer: int) -> onnx.ModelProto:
    """One decoder: an If on ``use_cache_branch`` yields ``present.{i}.encoder.*`` (the past ones
    passed through, or the cross graph run on ``encoder_hidden_states``), then the decoder."""
    enc_present = [f"present.{i}.encoder.{kv}" for i in range(n_layer) for kv in ("key", "value")]
    enc_past = [n.replace("present", "past_key_values", 1) for n in enc_present]
    c = cross.graph
    _prefixed(c, {"encoder_hidden_states"})
    else_branch = helper.make_graph(list(c.node), "compute_cross_kv", [], list(c.output), list(c.initializer))
    then_outputs = [helper.make_tensor_value_info(f"reuse/{n}", onnx.TensorProto.FLOAT, None) for n in enc_present]
    then_branch = helper.make_graph(
        [helper.make_node("Identity", [p], [o.name], name=f"/reuse/{p}") for p, o in zip(enc_past, then_outputs)],
        "reuse_cross_kv", [], then_outputs)
    g = decoder.graph
    branch = helper.make_node("If", ["use_cache_branch"], enc_present, name="/use_cache_branch/If",
                              then_branch=then_branch, else_branch=else_branch)
    nodes = [branch, *g.node]
    del g.node[:]
    g.node.extend(nodes)
    dec_inputs = {i.name: i for i in g.input}
    inputs = [dec_inputs["input_ids"],
              helper.make_tensor_value_info("encoder_hidden_states", onnx.TensorProto.FLOAT,
                                            ["batch_size", "encoder_sequence_length", cross.graph.input[0].type
                                             .tensor_type.shape.dim[2].dim_value])]
    for i in range(n_layer):
        inputs += [dec_inputs[f"past_key_values.{i}.decoder.key"], dec_inputs[f"past_key_values.{i}.decoder.value"]]
        for kv in ("key", "value"):
            dims = dec_inputs[f"present.{i}.encoder.{kv}"].type.tensor_type.shape.dim
            shape = [d.dim_param or d.dim_value for d in dims]
            shape[2] = "encoder_sequence_length_out"
            inputs.append(helper.make_tensor_value_info(f"past_key_values.{i}.encoder.{kv}", onnx.TensorProto.FLOAT,
                                                        shape))
    inputs.append(helper.make_tensor_value_info("use_cache_branch", onnx.TensorProto.BOOL, [1]))
    del g.input[:]
    g.input.extend(inputs)
    outputs = [g.output[0]]
    by_name = {o.name: o for o in g.output}
    for i in range(n_layer):
        outputs += [by_name[f"present.{i}.decoder.key"], by_name[f"present.{i}.decoder.value"]]
        shape = ["batch_size", "num_heads", "encoder_sequence_length_out", "head_dim"]
        outputs += [helper.make_tensor_value_info(f"present.{i}.encoder.{kv}", onnx.TensorProto.FLOAT, shape)
                    for kv in ("key", "value")]
    del g.output[:]
    g.output.extend(outputs)
    domains = {o.domain: o for o in [*decoder.opset_import, *cross.opset_import]}
    del decoder.opset_import[:]
    decoder.opset_import.extend(domains.values())
    return decoder


def transformers_js_graphs(model: Whisper, fp16: bool = True, accuracy_level: int | None = None
                           ) -> tuple[dict[str, onnx.ModelProto], dict]:
    """{encoder_model, decoder_model_merged} of ``model`` (fake-quant Linears packed as
    MatMulNBits from their codes; float weights stored as float16 when ``fp16``) and the packed
    Linears (name -> PackedNBits)."""
    m = export_copy(model)
    with torch.no_grad():
        protos = {ENCODER: trace_encoder(m), "cross": trace_cross(m), "decoder": trace_decoder(m)}
    packed = pack_linears(model)
    quantize_graphs(protos, packed, accuracy_level)
    embedding = pack_embedding(model)
    if embedding is not None and not replace_tied_embedding(protos["decoder"], EMBEDDING, embedding, accuracy_level):
        raise RuntimeError(f"traced decoder has no initializer {EMBEDDING}")
    if fp16:
        for proto in protos.values():
            float16_storage(proto)
    merged = merge(protos.pop("decoder"), protos.pop("cross"), model.dims.n_text_layer)
    return {ENCODER: protos[ENCODER], DECODER: merged}, packed
