"""Trace a Whisper (float, or fake-quant by a recipe) into the three graphs of an ONNX artifact.

    encoder          mel [B, n_mels, 3000] -> cross_k [L, B, H, dh, A], cross_v [L, B, H, A, dh]
    decoder_prefill  tokens [B, T], cross_k_i, cross_v_i (per layer)
                     -> logits [B, V] (last position), new_k [L, B, H, dh, T], new_v [L, B, H, T, dh]
    decoder_step     tokens [B, T], position [1], past_k_i [B, H, dh, C], past_v_i [B, H, C, dh],
                     cross_k_i, cross_v_i -> logits [B, V], new_k [L, B, H, dh, T], new_v [L, B, H, T, dh]
                     (T = 1 per decoding step; the runner also feeds it the prompt, see below)

With ``cross_keys="int8"`` the encoder writes cross_k as uint8 codes plus cross_k_scale
[L, B, H, 1, dh], and the decoders take cross_k_i as codes plus cross_k_scale_i [1, H, 1, dh]
(:mod:`asrquant.export.onnx.int8_cross`).

Choices, and why:
- The cross-attention key/value projections run once per clip, inside the encoder graph.
- The encoder's sinusoidal positions are computed by the graph, not stored, when they are the
  formula (:mod:`.onnx_positions`; a stored table is a visible share of a small int4 artifact).
- Keys and values are kept split by head, keys already transposed ([.., dh, ctx]), so no graph
  transposes a cache per step; the cross and past caches come in per layer, so no graph gathers a
  layer out of a stacked cache (a Gather copies). The cross caches have batch 1 and broadcast over
  the beams.
- The step graph attends to a preallocated buffer of C positions: those < ``position`` plus the
  new tokens themselves, the others masked. The runner writes the returned keys/values into its
  buffer in place, O(1) per step; nothing concatenates.
- The step graph takes T tokens, so the runner prefills through it too and holds ONE decoder
  session: each onnxruntime session keeps its own prepacked copy of the weights (the token
  embedding included), and a second session cost peak memory for no speed (figures:
  benchmarks/onnx-export/README.md, "Figures formerly in code comments").
  decoder_prefill stays in the artifact, sharing the weights file, for runtimes without a cache
  buffer of their own.
- Every Linear is ``x @ weight_t + bias`` on an initializer named ``<module>.weight_t``: the
  MatMul + Add form onnxruntime's fusions and its own quantizer look for, and the name by which
  :mod:`.matmulnbits` finds the Linear to pack. The logits reuse the token embedding through
  ``Gemm(transB=1)`` instead of storing its transpose.
- The TorchScript exporter (``dynamo=False``): with torch 2.13 it gives clean graphs (one
  LayerNormalization, MatMul, Softmax... per step of the math) whose initializers keep the
  parameter names, which the packing relies on; the dynamo exporter needs onnxscript, not a
  dependency here.
- No offline fusions: onnxruntime.transformers' optimizer (model_type "bart") finds no attention
  in these graphs and only adds SkipLayerNormalization, which measured no faster (figures:
  benchmarks/onnx-export/README.md). onnxruntime's own load-time
  optimizer already fuses BiasGelu, the query scale into the MatMul, and Transpose + MatMul.
  The encoder's attention is instead traced as the fused op itself when asked
  (``attention="fused"``, :mod:`asrquant.export.onnx.attention`); the decoders' stays unfused
  (their cache layout is not the one that op reads; figures: benchmarks/onnx-speed/README.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper
from torch import Tensor, nn

from ...errors import AsrQuantError
from ...export.onnx.artifact import float16_storage, write_onnx_artifact
from ...export.onnx.attention import CUSTOM_OPSETS as ATTENTION_OPSETS
from ...export.onnx.attention import check_mode as check_attention
from ...export.onnx.attention import fused_attention
from ...export.onnx.graphs import (
    OPSET,
    decoder_accuracy_level,
    export_copy,
    linear_names,
    linear_schemes,
    pack_linears,
    quantize_graphs,
    quantized_linears,
    trace,
    variant_info,
)
from ...export.onnx.int8_choice import COST_CLIPS, Int8Costs, check_int8_skip, choose_float, measure
from ...export.onnx.int8_choice import record as record_int8_choice
from ...export.onnx.int8_cross import quantize_decoder_scores, quantize_encoder_keys
from ...export.onnx.int8_matmul import OWN as INT8_OWN
from ...export.onnx.int8_matmul import graph_linears
from ...export.onnx.int8_scores import quantize_scores
from ...export.onnx.matmulnbits import PackedNBits, accuracy_level_for, pack, replace_tied_embedding
from ...export.onnx.smoothing import ALPHAS, Smoothing, smoothing_factors
from ...quant.linear import QuantEmbedding
from .calib import calibration_samples
from .detect import FAMILY
from .load import WhisperCheckpoint
from .model import Whisper
from .onnx_positions import compute_positions_in_graph

SMOOTHING_CLIPS = 16  # calibration clips whose log-mels calibrate the int8 encoder's smoothing
CROSS_KEYS = ("float", "int8")  # the decoder's cross-attention keys (see asrquant.export.onnx.int8_cross)
ENCODER_QUERY_ROWS = 300  # encoder self-attention in chunks of queries (see attend_in_chunks)
TRACE_BATCH, TRACE_TOKENS, TRACE_CAPACITY = 2, 3, 5  # distinct sizes so no dimension is traced as a constant


def split_heads(x: Tensor, n_head: int) -> Tensor:
    """[B, T, D] -> [B, H, T, dh]."""
    return x.reshape(x.shape[0], x.shape[1], n_head, -1).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """[B, H, T, dh] -> [B, T, D]."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)


def attend(q: Tensor, k_t: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """softmax(q k^T / sqrt(dh) + mask) v with k given transposed, heads split."""
    scores = torch.matmul(q * head_scale(q), k_t)
    if mask is not None:
        scores = scores + mask
    return torch.matmul(scores.softmax(-1), v)


def attend_in_chunks(q: Tensor, k_t: Tensor, v: Tensor, rows: int) -> Tensor:
    """:func:`attend` over ``rows`` queries at a time. Each chunk's scores and probabilities
    ([B, H, rows, ctx]) are freed before the next chunk's, so the encoder's peak memory is a
    fraction of the full [B, H, 1500, 1500] twice over; the result is the same."""
    n = q.shape[2]  # static in the encoder: n_audio_ctx
    return torch.cat([attend(q[:, :, i : i + rows], k_t, v) for i in range(0, n, rows)], dim=2)


def head_scale(q: Tensor) -> float:
    # int() makes the head size a traced constant, not a Shape -> Pow computation in the graph.
    return int(q.shape[-1]) ** -0.5


def mlp_residual(block: nn.Module, x: Tensor) -> Tensor:
    return x + block.mlp.fc2(F.gelu(block.mlp.fc1(block.mlp_ln(x))))


def cross_attention(block: nn.Module, x: Tensor, cross_k: Tensor, cross_v: Tensor, n_head: int) -> Tensor:
    q = split_heads(block.cross_attn.query(block.cross_attn_ln(x)), n_head)
    return x + block.cross_attn.out(merge_heads(attend(q, cross_k, cross_v)))


class EncoderGraph(nn.Module):
    def __init__(self, m: Whisper, attention: str = "unfused"):
        super().__init__()
        self.encoder, self.decoder = m.encoder, m.decoder
        self.n_head, self.n_text_head = m.dims.n_audio_head, m.dims.n_text_head
        self.fused = check_attention(attention) == "fused"

    def self_attention(self, block: nn.Module, h: Tensor) -> Tensor:
        a = block.attn
        if self.fused:  # one com.microsoft.MultiHeadAttention node (see asrquant.export.onnx.attention)
            return a.out(fused_attention(a.query(h), a.key(h), a.value(h), self.n_head))
        q, k, v = (split_heads(p(h), self.n_head) for p in (a.query, a.key, a.value))
        return a.out(merge_heads(attend_in_chunks(q, k.transpose(-1, -2), v, ENCODER_QUERY_ROWS)))

    def forward(self, mel: Tensor):
        enc = self.encoder
        x = F.gelu(enc.conv1(mel))
        x = F.gelu(enc.conv2(x)).transpose(1, 2)
        x = x + enc.positional_embedding
        for block in enc.blocks:
            x = x + self.self_attention(block, block.attn_ln(x))
            x = mlp_residual(block, x)
        x = enc.ln_post(x)
        h = self.n_text_head
        ks = [split_heads(b.cross_attn.key(x), h).transpose(-1, -2) for b in self.decoder.blocks]
        vs = [split_heads(b.cross_attn.value(x), h) for b in self.decoder.blocks]
        return torch.stack(ks), torch.stack(vs)


class PrefillGraph(nn.Module):
    """The prompt, all positions at once under a causal mask; returns the last position's hidden
    state (the logits Gemm is added to the graph afterwards, see :func:`add_logits`)."""

    def __init__(self, m: Whisper):
        super().__init__()
        self.decoder = m.decoder
        self.n_head = m.dims.n_text_head

    def forward(self, tokens: Tensor, *cross: Tensor):
        dec, n = self.decoder, len(self.decoder.blocks)
        t = tokens.shape[1]
        x = dec.token_embedding(tokens) + dec.positional_embedding[:t]
        pos = torch.arange(t)
        mask = torch.zeros(t, t).masked_fill(pos[None, :] > pos[:, None], float("-inf"))
        new_k, new_v = [], []
        for i, block in enumerate(dec.blocks):
            h = block.attn_ln(x)
            q, k, v = (split_heads(p(h), self.n_head) for p in (block.attn.query, block.attn.key, block.attn.value))
            k_t = k.transpose(-1, -2)
            x = x + block.attn.out(merge_heads(attend(q, k_t, v, mask)))
            x = cross_attention(block, x, cross[i], cross[n + i], self.n_head)
            x = mlp_residual(block, x)
            new_k.append(k_t)
            new_v.append(v)
        return dec.ln(x[:, -1]), torch.stack(new_k), torch.stack(new_v)


class StepGraph(nn.Module):
    """T new tokens per row (one when decoding, the prompt when prefilling through it) against
    preallocated cache buffers of C positions (see the module doc)."""

    def __init__(self, m: Whisper):
        super().__init__()
        self.decoder = m.decoder
        self.n_head = m.dims.n_text_head

    def forward(self, tokens: Tensor, position: Tensor, *caches: Tensor):
        dec, n = self.decoder, len(self.decoder.blocks)
        past_k, past_v, cross_k, cross_v = (caches[j * n : (j + 1) * n] for j in range(4))
        t = tokens.shape[1]
        new_pos = torch.arange(t)
        x = dec.token_embedding(tokens) + dec.positional_embedding.index_select(0, position + new_pos)
        capacity = past_k[0].shape[-1]
        # The buffer holds positions < ``position``; the new tokens see each other causally.
        past_mask = torch.zeros(capacity).masked_fill(torch.arange(capacity) >= position, float("-inf"))
        new_mask = torch.zeros(t, t).masked_fill(new_pos[None, :] > new_pos[:, None], float("-inf"))
        new_k, new_v = [], []
        for i, block in enumerate(dec.blocks):
            h = block.attn_ln(x)
            q, k, v = (split_heads(p(h), self.n_head) for p in (block.attn.query, block.attn.key, block.attn.value))
            q = q * head_scale(q)
            k_t = k.transpose(-1, -2)
            scores = torch.cat([torch.matmul(q, past_k[i]) + past_mask, torch.matmul(q, k_t) + new_mask], -1)
            p = scores.softmax(-1)
            o = torch.matmul(p[..., :capacity], past_v[i]) + torch.matmul(p[..., capacity:], v)
            x = x + block.attn.out(merge_heads(o))
            x = cross_attention(block, x, cross_k[i], cross_v[i], self.n_head)
            x = mlp_residual(block, x)
            new_k.append(k_t)
            new_v.append(v)
        return dec.ln(x[:, -1]), torch.stack(new_k), torch.stack(new_v)


def layer_names(prefix: str, n_layer: int) -> list[str]:
    return [f"{prefix}_{i}" for i in range(n_layer)]


def cross_input_names(n_layer: int) -> list[str]:
    return layer_names("cross_k", n_layer) + layer_names("cross_v", n_layer)


def trace_encoder(m: Whisper, attention: str = "unfused") -> onnx.ModelProto:
    d = m.dims
    mel = torch.zeros(1, d.n_mels, 2 * d.n_audio_ctx)
    axes = {"mel": {0: "batch"}, "cross_k": {1: "batch"}, "cross_v": {1: "batch"}}
    opsets = ATTENTION_OPSETS if attention == "fused" else None
    proto = trace(EncoderGraph(m, attention), (mel,), ["mel"], ["cross_k", "cross_v"], axes, opsets)
    compute_positions_in_graph(proto, m.encoder.positional_embedding.numpy())
    return proto


def _cross_examples(m: Whisper) -> list[Tensor]:
    d = m.dims
    dh = d.n_text_state // d.n_text_head
    k = [torch.randn(1, d.n_text_head, dh, d.n_audio_ctx) for _ in range(d.n_text_layer)]
    v = [torch.randn(1, d.n_text_head, d.n_audio_ctx, dh) for _ in range(d.n_text_layer)]
    return k + v


def _cross_axes(n_layer: int) -> dict:
    return {name: {0: "cross_batch"} for name in cross_input_names(n_layer)}


def trace_prefill(m: Whisper) -> onnx.ModelProto:
    n = m.dims.n_text_layer
    tokens = torch.zeros(TRACE_BATCH, TRACE_TOKENS, dtype=torch.long)
    inputs = ["tokens"] + cross_input_names(n)
    axes = {"tokens": {0: "batch", 1: "tokens"}, "hidden": {0: "batch"},
            "new_k": {1: "batch", 4: "tokens"}, "new_v": {1: "batch", 3: "tokens"}, **_cross_axes(n)}
    proto = trace(PrefillGraph(m), (tokens, *_cross_examples(m)), inputs, ["hidden", "new_k", "new_v"], axes)
    return add_logits(proto)


def trace_step(m: Whisper) -> onnx.ModelProto:
    d = m.dims
    n, dh = d.n_text_layer, d.n_text_state // d.n_text_head
    b, c = TRACE_BATCH, TRACE_CAPACITY
    tokens = torch.zeros(b, TRACE_TOKENS, dtype=torch.long)
    position = torch.tensor([2], dtype=torch.long)
    past_k = [torch.randn(b, d.n_text_head, dh, c) for _ in range(n)]
    past_v = [torch.randn(b, d.n_text_head, c, dh) for _ in range(n)]
    inputs = ["tokens", "position"] + layer_names("past_k", n) + layer_names("past_v", n) + cross_input_names(n)
    axes = {"tokens": {0: "batch", 1: "tokens"}, "hidden": {0: "batch"},
            "new_k": {1: "batch", 4: "tokens"}, "new_v": {1: "batch", 3: "tokens"},
            **{k: {0: "batch", 3: "capacity"} for k in layer_names("past_k", n)},
            **{v: {0: "batch", 2: "capacity"} for v in layer_names("past_v", n)}, **_cross_axes(n)}
    args = (tokens, position, *past_k, *past_v, *_cross_examples(m))
    return add_logits(trace(StepGraph(m), args, inputs, ["hidden", "new_k", "new_v"], axes))


EMBEDDING = "decoder.token_embedding.weight"


def add_logits(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Replace the ``hidden`` output by ``logits = Gemm(hidden, E, transB=1)``, E the token
    embedding the graph already holds for its Gather (Whisper ties the two)."""
    g = proto.graph
    if EMBEDDING not in {t.name for t in g.initializer}:
        raise RuntimeError(f"traced decoder has no initializer {EMBEDDING}")
    g.node.append(helper.make_node("Gemm", ["hidden", EMBEDDING], ["logits"], name="/logits/Gemm", transB=1))
    hidden = next(o for o in g.output if o.name == "hidden")
    logits = helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", "n_vocab"])
    outputs = [logits if o.name == "hidden" else o for o in g.output]
    del g.output[:]
    g.output.extend(outputs)
    g.value_info.append(hidden)
    return proto


def trace_graphs(model: Whisper, attention: str = "unfused") -> dict[str, onnx.ModelProto]:
    """The three float graphs of ``model`` (fake-quant Linears traced with their dequantized weights);
    ``attention="fused"``: the encoder's self-attention as one fused node per layer."""
    m = export_copy(model)
    with torch.no_grad():
        return {"encoder": trace_encoder(m, attention), "decoder_prefill": trace_prefill(m),
                "decoder_step": trace_step(m)}


# --- the artifact ----------------------------------------------------------------------------


def pack_embedding(model: Whisper) -> PackedNBits | None:
    """The token embedding packed for MatMulNBits when the recipe quantized it, else None."""
    emb = model.decoder.token_embedding
    return pack(emb.qweight, EMBEDDING) if isinstance(emb, QuantEmbedding) else None


def quantize_embedding(protos: dict[str, onnx.ModelProto], p: PackedNBits, accuracy_level: int | None) -> None:
    """The decoder graphs' logits and lookups read the one packed table (see replace_tied_embedding)."""
    for name in ("decoder_prefill", "decoder_step"):
        if not replace_tied_embedding(protos[name], EMBEDDING, p, accuracy_level):
            raise RuntimeError(f"{name}: traced decoder has no initializer {EMBEDDING}")


def tensor_schemes(model: Whisper, packed: dict[str, PackedNBits], recipe=None, accuracy_level: int | None = None,
                   float_dtype: str = "float32", int8: dict[str, str] | None = None,
                   smoothing: dict[str, Smoothing] | None = None, keep_float: frozenset[str] = frozenset()) -> dict:
    """:func:`linear_schemes`, plus the token table when the recipe quantized it and the int8
    Linears' input smoothing when the export calibrated one."""
    int8, smoothing = int8 or {}, smoothing or {}
    table = linear_schemes(model, packed, recipe, accuracy_level, float_dtype, int8, keep_float)
    emb = model.decoder.token_embedding
    if isinstance(emb, QuantEmbedding):
        p = pack(emb.qweight, EMBEDDING)
        rule = recipe.embedding_rule_for("decoder.token_embedding") if recipe is not None else None
        table["decoder.token_embedding"] = {
            "scheme": emb.qweight.scheme.name, **emb.qweight.scheme.to_dict(), "block_size": p.block_size,
            "algorithm": rule.algorithm if rule else None,
            "op": "MatMulNBits (logits) + Gather of the packed rows (lookups)",
            "accuracy_level": accuracy_level_for(p.bits, accuracy_level)}
    for name in set(smoothing) & set(int8):
        if int8[name] != INT8_OWN:  # a Linear's own int8 codes are used as they are, unsmoothed
            table[name]["smoothing"] = smoothing[name].to_dict()
    return table


def whisper_config(ckpt: WhisperCheckpoint) -> dict:
    d = ckpt.dims
    return {
        "family": FAMILY,
        "dims": d.to_dict(),
        "multilingual": ckpt.multilingual,
        "n_mels": d.n_mels,
        "suppress_ids": list(ckpt.suppress_ids),
        "suppress_ids_begin": list(ckpt.suppress_ids_begin),
        "lang_ids": list(ckpt.lang_ids),
        "alignment_heads": [list(h) for h in ckpt.alignment_heads],
        "opset": OPSET,
        "cache_layout": {
            "cross_k": "[layer, batch, head, head_dim, audio_ctx]",
            "cross_v": "[layer, batch, head, audio_ctx, head_dim]",
            "past_k_i": "[batch, head, head_dim, capacity]",
            "past_v_i": "[batch, head, capacity, head_dim]",
        },
    }


def smoothing_mels(ckpt: WhisperCheckpoint, calib: str, progress: bool = True) -> tuple[list[np.ndarray], dict]:
    """Log-mels of SMOOTHING_CLIPS clips of ``calib`` (spread over the manifest, as a recipe's
    calibration picks them) for the int8 encoder's smoothing, and which clips they are."""
    samples, cal = calibration_samples(ckpt, calib, SMOOTHING_CLIPS, progress=progress, decode=False)
    return [s.mel for s in samples], cal.to_dict()


def export_onnx(ckpt: WhisperCheckpoint, out_dir, *, recipe=None, variant: str | None = None,
                accuracy_level: int | None = None, fp16: bool = False, compute: str = "float",
                calib: str | None = None, progress: bool = False,
                smooth_mels: list[np.ndarray] | None = None, smooth_clips: dict | None = None,
                attention: str = "unfused", cross_keys: str = "float", smooth: bool = True,
                int8_skip: int | None = None,
                float_model: nn.Module | None = None, int8_costs: Int8Costs | None = None) -> Path:
    """Trace ``ckpt.model`` (possibly quantized in place by ``recipe``), pack its QuantLinears as
    MatMulNBits and write the artifact (or the variant) at ``out_dir``.

    ``fp16`` stores the weights left in float as float16 (see
    :func:`asrquant.export.onnx.artifact.float16_storage`). ``compute="int8"`` runs the encoder's
    Linears in int8 (see :mod:`asrquant.export.onnx.int8_matmul`), their inputs smoothed
    (:mod:`asrquant.export.onnx.smoothing`, unless ``smooth`` is False) as calibrated on the clips
    of ``calib``, or on ``smooth_mels`` (log-mels; ``smooth_clips`` says which clips, for the
    manifest). ``int8_skip``: each encoder-graph Linear's int8 cost is measured on the clips of
    ``calib`` against ``float_model`` (or taken from ``int8_costs``) and the ``int8_skip``
    costliest stay on float compute (:mod:`asrquant.export.onnx.int8_choice`).
    ``attention="fused"`` exports the encoder's self-attention as onnxruntime's fused op
    (:mod:`asrquant.export.onnx.attention`), ``attention="int8"`` its scores as integer GEMMs
    (:mod:`asrquant.export.onnx.int8_scores`). ``cross_keys="int8"`` hands the decoder its
    cross-attention keys as int8 codes and computes their scores as integer GEMMs
    (:mod:`asrquant.export.onnx.int8_cross`)."""
    model = ckpt.model
    if cross_keys not in CROSS_KEYS:
        raise ValueError(f"cross_keys must be one of {CROSS_KEYS}, not {cross_keys!r}")
    check_int8_skip(int8_skip, compute)
    if compute == "int8" and smooth and calib and smooth_mels is None:
        smooth_mels, smooth_clips = smoothing_mels(ckpt, calib, progress)
    smoothing = None
    if compute == "int8" and smooth and smooth_mels:
        in_encoder_graph = [n for n in linear_names(model)
                            if n.startswith("encoder.") or n.endswith(("cross_attn.key", "cross_attn.value"))]
        smoothing = smoothing_factors(model, in_encoder_graph, smooth_mels, progress)
    protos = trace_graphs(model, check_attention(attention))
    packed = pack_linears(model)
    smooth_scales = {n: s.scale for n, s in (smoothing or {}).items() if s.scale is not None}
    keep_float = frozenset()
    if int8_skip is not None:
        names = graph_linears(protos["encoder"])
        if int8_costs is None:
            int8_costs = measure_int8_costs(ckpt, calib, names, float_model, smooth_scales, progress)
        keep_float = choose_float(int8_costs, int8_skip, names)
    int8 = quantize_graphs(protos, packed, accuracy_level, compute, quantized_linears(model), smooth_scales,
                           keep_float)
    if attention == "int8":
        quantize_scores(protos["encoder"])
    if cross_keys == "int8":
        quantize_encoder_keys(protos["encoder"])
        for g in ("decoder_prefill", "decoder_step"):
            quantize_decoder_scores(protos[g], model.dims.n_text_layer)
    accuracy_level = decoder_accuracy_level(accuracy_level, compute)
    embedding = pack_embedding(model)
    if embedding is not None:
        quantize_embedding(protos, embedding, accuracy_level)
    if fp16:
        for proto in protos.values():
            float16_storage(proto)
    float_dtype = "float16" if fp16 else "float32"
    # an artifact whose record names no cross_keys has float keys (those made before the option)
    modes = {"encoder": attention, **({"cross_keys": cross_keys} if cross_keys != "float" else {})}
    info = variant_info(recipe, accuracy_level, float_dtype,
                        tensor_schemes(model, packed, recipe, accuracy_level, float_dtype, int8, smoothing,
                                       keep_float), compute, attention=modes)
    if smoothing:
        smoothed = [t for t in info["tensors"].values() if (t.get("smoothing") or {}).get("alpha") is not None]
        info["int8_smoothing"] = {"calibration": smooth_clips, "alphas_tried": [None, *ALPHAS],
                                  "smoothed": len(smoothed)}
    if int8_skip is not None:
        record_int8_choice(info, int8_costs, keep_float)
    source = {"model": ckpt.source, "sha256": ckpt.source_sha256, "format": ckpt.format}
    return write_onnx_artifact(out_dir, protos, config=whisper_config(ckpt), tokenizer_json=ckpt.tokenizer_json,
                               source=source, variant=variant, variant_info=info)


def measure_int8_costs(ckpt: WhisperCheckpoint, calib: str | None, names: list[str], float_model: nn.Module | None,
                       smooth: dict[str, np.ndarray], progress: bool) -> Int8Costs:
    """The int8 cost of every Linear of ``names`` on COST_CLIPS clips of ``calib`` (see
    :mod:`asrquant.export.onnx.int8_choice`)."""
    if not calib:
        raise AsrQuantError("--int8-skip measures each encoder Linear's int8 cost on calibration clips: give --calib")
    samples, cal = calibration_samples(ckpt, calib, COST_CLIPS, progress=progress)
    return measure(ckpt.model, names, samples, cal.to_dict(), float_model, smooth, progress)
