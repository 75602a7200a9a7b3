"""``--format transformers.js``: the layout transformers.js (``@huggingface/transformers`` v3) and
optimum's ONNX Runtime classes load, for the browser (onnxruntime-web) and Node.

    config.json                  the Hugging Face config, with "transformers.js_config": {"dtype": ...}
    generation_config.json  preprocessor_config.json  tokenizer.json  tokenizer_config.json
    onnx/encoder_model{suffix}.onnx
    onnx/decoder_model_merged{suffix}.onnx
    manifest.json                ours: source, recipe, every tensor's scheme, every file's sha256

The file suffix is transformers.js' name for the dtype (``DEFAULT_DTYPE_SUFFIX_MAPPING`` in its
``src/utils/dtypes.js``): ``_q4`` when the recipe quantized the Linears to 4 bits (MatMulNBits
packed from the recipe's own codes, the weights left in float stored as float16 behind a Cast;
inputs and outputs float32, as transformers.js' q4 expects), none (fp32) for a float export.
Each graph is one file with its weights inside: transformers.js loads external data only when
the config asks for it, and a Whisper up to small fits well under protobuf's 2 GB.

The family supplies the graphs (``FamilyInfo.transformers_js``); only Whisper has them.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
from torch import nn

from ..artifact import atomic_dir, write_manifest
from ..errors import AsrQuantError
from ..families import TRANSFORMERS_JS_KIND
from ..quant.linear import linear_names
from ..quant.qtensor import QuantizedWeight
from .hf_layout import FamilyInfo, manifest_fields, write_config, write_support_files

FORMAT = "transformers.js"
SUFFIX = {"fp32": "", "fp16": "_fp16", "q8": "_quantized", "q4": "_q4", "q4f16": "_q4f16"}  # dtypes.js
GRAPHS = ("encoder_model", "decoder_model_merged")
QWEN3_ASR_NOTE = ("Qwen3-ASR has no transformers.js model class: it would need one in transformers.js (an audio "
                  "encoder, the Qwen3 decoder with a merged cache, its processor), then graphs here in the names "
                  "that class reads")


def tokenizer_config() -> dict:
    """What transformers.js' AutoTokenizer reads to build a WhisperTokenizer."""
    eot = "<|endoftext|>"
    return {"tokenizer_class": "WhisperTokenizer", "bos_token": eot, "eos_token": eot, "unk_token": eot,
            "pad_token": eot, "model_max_length": 1024, "add_prefix_space": False, "errors": "replace",
            "clean_up_tokenization_spaces": True}


def dtype_of(qweights: dict[str, QuantizedWeight]) -> str:
    """transformers.js' dtype name for the export: q4 (every quantized Linear 4-bit integers)
    or fp32 (none quantized); other mixes have no name there."""
    if not qweights:
        return "fp32"
    schemes = {(qw.scheme.format, qw.scheme.bits) for qw in qweights.values()}
    if schemes == {("int", 4)}:
        return "q4"
    raise AsrQuantError(f"--format {FORMAT}: transformers.js names 4-bit integer weights (q4) or float ones (fp32); "
                        f"this recipe stores {sorted(s.scheme.name for s in qweights.values())[0]}: use a 4-bit "
                        "integer recipe (gptq-int4-g64, rtn-int4-g64, ...)")


def graph_path(graph: str, dtype: str) -> str:
    return f"onnx/{graph}{SUFFIX[dtype]}.onnx"


def write_transformers_js(model: nn.Module, family: FamilyInfo, qweights: dict[str, QuantizedWeight],
                          out_dir: str | Path, recipe=None) -> Path:
    """Write the transformers.js layout of ``model`` to ``out_dir`` (atomically)."""
    if family.transformers_js is None:
        raise AsrQuantError(f"--format {FORMAT}: {family.family} is not supported. {QWEN3_ASR_NOTE}")
    for name, qw in qweights.items():
        if qw.input_scale is not None:
            raise AsrQuantError(f"{name}: an AWQ input scale that was not folded into a LayerNorm; export this recipe "
                                "to onnx, or use gptq/rtn for this layer")
    dtype = dtype_of(qweights)
    protos = family.transformers_js(model, fp16=dtype != "fp32")
    config = {**family.config, "transformers.js_config": {"dtype": dtype}}
    fields = manifest_fields(FORMAT, family, qweights, recipe, {n: n for n in linear_names(model)})
    fields.update(kind=TRANSFORMERS_JS_KIND, dtype=dtype, graphs={g: graph_path(g, dtype) for g in GRAPHS},
                  float_storage="float32" if dtype == "fp32" else "float16")
    with atomic_dir(out_dir) as tmp:
        (tmp / "onnx").mkdir()
        for g in GRAPHS:
            onnx.save_model(protos[g], str(tmp / graph_path(g, dtype)))
        write_config(tmp, config)
        write_support_files(family, tmp)
        (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2) + "\n")
        write_manifest(tmp, **fields)
    return Path(out_dir)
