"""The model card of an exported artifact: ``README.md`` in the Hugging Face convention.

YAML front matter (license, base_model, base_model_relation: quantized, library_name, tags,
pipeline_tag), then what was done (target, recipe, calibration clips and their sha256, bits per
weight, every file with its size), how to load it in its runtime, and, when the export was asked
to ``--eval``, the bench's own table against the float source on those clips.

The card is a file of the artifact: :func:`add_card` writes it into the (not yet published)
artifact directory and lists it in the manifest with its sha256.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import families
from ..artifact import MANIFEST, read_manifest, write_manifest

CARD = "README.md"

# Per format: the Hugging Face library name, its tags, and how a user loads it (DIR = the artifact).
LIBRARY = {"onnx": "onnxruntime", "compressed-tensors": "transformers", "nvfp4": "transformers", "mlx": "mlx"}
TAGS = {"onnx": ["onnx", "onnxruntime"], "compressed-tensors": ["compressed-tensors", "vllm"],
        "nvfp4": ["nvfp4", "modelopt", "tensorrt-llm"], "mlx": ["mlx"]}
LOAD = {
    "onnx": """With asrquant's torch-free runner (numpy, onnxruntime, tokenizers, an audio decoder):

```bash
pip install asrquant
asrquant transcribe DIR clip.wav
```

```python
from asrquant.audio import load_audio
from asrquant.engines import open_engine

engine = open_engine("DIR", threads=2)
print(engine.transcribe(load_audio("clip.wav"), "en", beam_size=1).text)
```

The graphs (`encoder.onnx`, `decoder_prefill.onnx`, `decoder_step.onnx`, weights in `*.onnx.data`) use
onnxruntime's `MatMulNBits` (com.microsoft) and standard operators; `manifest.json` states the layout.
A `*+s8.onnx` file is a graph's signed twin: its int8 GEMMs' weights as int8, which the runner opens on
CPUs with VNNI or AMX (faster there, the same integers).""",
    "compressed-tensors": """vLLM reads the directory as a compressed-tensors checkpoint (W4A16):

```python
from vllm import LLM
llm = LLM(model="DIR")  # quantization is read from config.json
```

transformers (CPU or GPU), decompressed to float weights at load:

```python
from transformers import AutoProcessor, WhisperForConditionalGeneration
from transformers.utils.quantization_config import CompressedTensorsConfig

model = WhisperForConditionalGeneration.from_pretrained(
    "DIR", quantization_config=CompressedTensorsConfig(run_compressed=False))
processor = AutoProcessor.from_pretrained("DIR")
```""",
    "nvfp4": """A TensorRT Model Optimizer NVFP4 checkpoint (`hf_quant_config.json`, `quantization_config` in
`config.json`): build an engine with TensorRT-LLM on a Blackwell GPU, or read it back in Python with
`asrquant.export.readers.read_nvfp4("DIR")` (the weights the runtime computes, in float32).""",
    "mlx": """mlx-examples' whisper layout (`config.json` with a `quantization` block, `weights.safetensors`):

```python
import mlx_whisper
print(mlx_whisper.transcribe("clip.wav", path_or_hf_repo="DIR")["text"])
```""",
}


def front_matter(fields: dict) -> str:
    """YAML by hand (no dependency): strings JSON-quoted (valid YAML), lists as block sequences."""
    lines = ["---"]
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, list):
            lines.append(f"{key}:")
            lines += [f"- {json.dumps(v)}" for v in value]
        else:
            lines.append(f"{key}: {json.dumps(value)}")
    return "\n".join(lines + ["---", ""])


def _bits(report) -> float | None:
    if report is None:
        return None
    if isinstance(report, dict):
        return report.get("mean_bits_per_weight")
    return report.mean_bits_per_weight


def card_text(directory: Path, *, spec: str, family: str, config: dict, fmt: str, recipe=None, target=None,
              report=None, calibration=None, evaluation: str | None = None) -> str:
    facts = families.module(family, "export_names").card_facts(spec, config)
    manifest = read_manifest(directory)
    scheme_tags = sorted({s.split("-")[0] for s in (manifest.get("schemes") or {}).values()})
    tags = ["asrquant", *facts["tags"], *TAGS.get(fmt, []), *scheme_tags,
            *([recipe.name] if recipe is not None else []), *([f"target-{target.name}"] if target else [])]
    head = front_matter({"license": facts["license"], "base_model": facts["base_model"],
                         "base_model_relation": "quantized" if recipe is not None else None,
                         "library_name": LIBRARY.get(fmt), "pipeline_tag": "automatic-speech-recognition",
                         "language": facts.get("language"), "tags": list(dict.fromkeys(tags))})
    tool = manifest.get("recipe") if recipe is None and isinstance(manifest.get("recipe"), dict) else None
    what = recipe.name if recipe is not None else tool["name"] if tool else "float"
    out = [head, f"# {Path(str(spec)).name}, {what} ({fmt})", ""]
    if target is not None:
        out += [f"Exported by `asrquant export {spec} --target {target.name}` "
                f"(target `{target.name}` v{target.version}: {target.summary}). Runtime: {target.runtime}.", "",
                f"How the target was chosen ({target.benchmark}): {target.chosen}", ""]
    out += ["## What was done", "",
            f"- Source: `{spec}` (family {family}; weights sha256 "
            f"`{manifest.get('source_sha256') or _source_sha(manifest)}`)"]
    if recipe is not None:
        out.append(f"- Recipe `{recipe.name}`: {recipe.description}")
        for rule in recipe.rules:
            where = ", ".join([*rule.kinds, *rule.match]) or "every other Linear"
            out.append(f"  - {where}: `{rule.scheme.name}` by {rule.algorithm}")
        if recipe.embedding is not None:
            out.append(f"  - token embedding: `{recipe.embedding.scheme.name}` by {recipe.embedding.algorithm}")
    if tool is not None and tool.get("tool"):
        out.append(f"- Quantized after export by {tool['tool']} {tool.get('onnxruntime', '')}: 4-bit blocks of "
                   f"{tool.get('block_size')}, {'symmetric' if tool.get('symmetric') else 'zero points'}; "
                   f"{tool.get('float', '')}")
    bits = _bits(report)
    if bits:
        out.append(f"- Bits per quantized weight: {bits:.2f} (scales and zero points included)")
    if target is not None and target.options:
        out.append(f"- Export options: {target.flags()}")
    out += _int8_choice(manifest)
    if calibration is not None:
        cal = calibration if isinstance(calibration, dict) else calibration.to_dict()
        where = Path(cal["manifest"])
        out += [f"- Calibration: {len(cal['ids'])} clips of `{where.parent.name}/{where.name}` "
                "(id, audio sha256):", ""]
        out += ["  | clip | sha256 |", "  |---|---|"]
        out += [f"  | {i} | `{h}` |" for i, h in zip(cal["ids"], cal["audio_sha256"])]
    files = manifest.get("files", {})
    total = sum(m["bytes"] for m in files.values())
    out += ["", f"## Files ({total / 1e6:.1f} MB)", "", "| file | MB | sha256 |", "|---|---:|---|"]
    out += [f"| `{name}` | {m['bytes'] / 1e6:.2f} | `{m['sha256'][:16]}…` |" for name, m in files.items()]
    out += [f"| `{CARD}` | — | this card (its sha256 is in `{MANIFEST}`) |", ""]
    out += ["## How to load", "", LOAD.get(fmt, "").replace("DIR", "path/to/this/directory"), ""]
    if evaluation:
        out += [evaluation, ""]
    return "\n".join(out)


def _int8_choice(manifest: dict) -> list[str]:
    """A line on which encoder Linears run int8 where the export chose them by cost (--int8-skip)."""
    default = (manifest.get("variants") or {}).get(manifest.get("default_variant") or "default") or {}
    choice = default.get("int8_choice")
    if not choice:
        return []
    kept = choice["float_compute"]
    which = f": {', '.join(f'`{n}`' for n in kept)}" if kept else ""
    return [f"- Int8 compute (--int8-skip {len(kept)}): {choice['int8']} of the {choice['of']} encoder-graph "
            f"Linears run as int8 GEMMs; the {len(kept)} whose int8 chain added the most KL against the float "
            f"model on {len((choice.get('calibration') or {}).get('ids', []))} calibration clips stay on float "
            f"compute{which} (each Linear's measured cost: `int8_cost` in manifest.json)"]


def _source_sha(manifest: dict) -> str:
    return (manifest.get("source") or {}).get("sha256", "unknown") if isinstance(manifest.get("source"), dict) \
        else "unknown"


def add_card(directory: Path, text: str, **extra) -> None:
    """Write README.md into the artifact and list it in the manifest (its fields kept, ``extra``
    added, every sha256 computed again)."""
    (directory / CARD).write_text(text, encoding="utf-8")
    manifest = read_manifest(directory)
    fields = {k: v for k, v in manifest.items() if k not in ("asrquant_version", "files")}
    write_manifest(directory, **fields, **extra)
