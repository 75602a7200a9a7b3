"""The q4 that web users get today: a float ``--format transformers.js`` export run through
onnxruntime's own ``MatMulNBitsQuantizer`` as transformers.js' conversion script does for its
``q4`` dtype (``scripts/quantize.py``: ``quantize_q4``, block size 32, symmetric, no
accuracy_level, MatMul nodes only), written in the same layout with the ``_q4`` suffix: the
round-to-nearest peer our GPTQ export is measured against, in the same page and the same runner.

    asrquant export whisper-tiny.en --format transformers.js --ort-q4 --out runs/tiny-web-ort-q4
    python -m asrquant.export.transformers_js_ort runs/tiny-web-fp32 --out runs/tiny-web-ort-q4

onnxruntime's quantizer walks subgraphs: the cross-attention key/value MatMuls inside the ``If``
of ``decoder_model_merged`` (its else branch) are quantized too. What it leaves in float32 (as
transformers.js' q4 files do): the convolutions, LayerNorms, positional tables, the token
embedding (a Gather) and the logits (a Gemm on the tied embedding; optimum's graphs read it with
a MatMul, which onnxruntime would quantize: ours keeps the table once, so it stays float here).
The manifest's ``recipe.nodes`` counts MatMulNBits and float MatMul/Gemm per graph.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import onnx

from ..artifact import atomic_dir, read_manifest, verify, write_manifest
from ..errors import ArtifactError, AsrQuantError
from .onnx.ort_quantizer import ort_quantized
from .transformers_js import FORMAT, GRAPHS, graph_path

BLOCK_SIZE = 32  # transformers.js' scripts/quantize.py: quantization_args.block_size or 32
SYMMETRIC = True  # its is_symmetric default


def count_ops(graph: onnx.GraphProto, ops=("MatMul", "MatMulNBits", "Gemm", "Gather")) -> dict[str, int]:
    """How many nodes of each of ``ops`` the graph holds, its subgraphs included."""
    counts = dict.fromkeys(ops, 0)
    for node in graph.node:
        if node.op_type in counts:
            counts[node.op_type] += 1
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                for op, n in count_ops(sub, ops).items():
                    counts[op] += n
    return counts


def float_weight_matmuls(graph: onnx.GraphProto, known: frozenset = frozenset()) -> list[str]:
    """MatMul nodes (subgraphs included) whose second input is an initializer: what the quantizer
    should have replaced; an empty list after it ran."""
    names = known | {t.name for t in graph.initializer}
    out = [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in names]
    for node in graph.node:
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                out += float_weight_matmuls(sub, names)
    return out


def _float_export(directory: Path) -> dict:
    manifest = verify(directory)
    if manifest.get("format") != FORMAT or manifest.get("dtype") != "fp32":
        raise ArtifactError(f"{directory}: not a float --format {FORMAT} export (format {manifest.get('format')!r}, "
                            f"dtype {manifest.get('dtype')!r}); export the model without --recipe first")
    return manifest


def ort_q4_files(directory: Path, block_size: int = BLOCK_SIZE, symmetric: bool = SYMMETRIC) -> dict:
    """Replace the float graphs in ``directory`` (a float transformers.js export, in place: call it
    on a staging copy) by onnxruntime's q4 ones; rewrite config.json's dtype and the manifest."""
    import onnxruntime

    manifest = _float_export(directory)
    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
    nodes = {}
    for g in GRAPHS:
        src, dst = directory / graph_path(g, "fp32"), directory / graph_path(g, "q4")
        proto = ort_quantized(onnx.load(str(src)), 4, block_size, symmetric, 0)
        left = float_weight_matmuls(proto.graph)
        if left:
            raise AsrQuantError(f"onnxruntime's quantizer left {len(left)} weight MatMuls of {g} in float: {left[:3]}")
        nodes[g] = count_ops(proto.graph)
        onnx.save_model(proto, str(dst))
        src.unlink()
    config = json.loads((directory / "config.json").read_text())
    config["transformers.js_config"] = {**config.get("transformers.js_config", {}), "dtype": "q4"}
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    fields = {k: v for k, v in manifest.items() if k not in ("asrquant_version", "files")}
    fields.update(dtype="q4", graphs={g: graph_path(g, "q4") for g in GRAPHS}, float_storage="float32", recipe={
        "name": f"onnxruntime-q4-b{block_size}{'-sym' if symmetric else ''}",
        "tool": "onnxruntime MatMulNBitsQuantizer (transformers.js' q4 conversion)",
        "onnxruntime": onnxruntime.__version__, "algorithm": "default", "bits": 4, "block_size": block_size,
        "symmetric": symmetric, "accuracy_level": None,
        "float": "Conv, LayerNorm, positional tables, the token embedding (Gather) and the logits (Gemm) in float32",
        "nodes": nodes})
    return write_manifest(directory, **fields)


def write_ort_q4(float_dir: str | Path, out_dir: str | Path, block_size: int = BLOCK_SIZE,
                 symmetric: bool = SYMMETRIC) -> Path:
    """A copy of the float export ``float_dir`` with onnxruntime's q4 graphs, at ``out_dir``."""
    float_dir = Path(float_dir)
    _float_export(float_dir)
    with atomic_dir(out_dir) as tmp:
        for p in float_dir.iterdir():
            (shutil.copytree if p.is_dir() else shutil.copy2)(p, tmp / p.name)
        ort_q4_files(tmp, block_size, symmetric)
    return Path(out_dir)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m asrquant.export.transformers_js_ort", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("float_export", help="an asrquant --format transformers.js export without --recipe (fp32)")
    p.add_argument("--out", required=True)
    p.add_argument("--block-size", type=int, default=BLOCK_SIZE)
    p.add_argument("--asymmetric", action="store_true", help="zero points (transformers.js' q4 is symmetric)")
    args = p.parse_args(argv)
    if Path(args.out).exists():
        print(f"error: {args.out} exists", file=sys.stderr)
        return 1
    try:
        write_ort_q4(args.float_export, args.out, args.block_size, not args.asymmetric)
    except AsrQuantError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    m = read_manifest(args.out)
    print(f"wrote {args.out} ({m['recipe']['name']}: {json.dumps(m['recipe']['nodes'])})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
