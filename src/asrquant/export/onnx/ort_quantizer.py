"""onnxruntime's own weight quantizer (``MatMulNBitsQuantizer``) run on the float graphs of an
export, written as a variant beside them: the tool a user would otherwise reach for, decoded by
the same runner as our recipes.

Algorithms (``--algorithm``), as onnxruntime names and implements them:

    default  onnxruntime's blockwise round to nearest (C++), 2/4/8 bits, symmetric or not
    rtn      round to nearest of onnxruntime's bundled Intel Neural Compressor code, 4 bits
    k_quant  the same code's k-quant (llama.cpp's weighted scale search), 4 bits, asymmetric
    hqq      Half-Quadratic Quantization (runs in torch), 2/4/8 bits, asymmetric
    gptq     the bundled GPTQ, 4 bits, calibrated on audio: --calib MANIFEST [--clips N]

onnxruntime 1.31.1's GPTQ (neural_compressor/weight_only.py, ``gptq``) propagates no rounding
error: it reads column i of the upper Cholesky factor of H^-1 (``Hinv1[i:, i]``), all zeros below
the diagonal, where GPTQ needs row i. Its output is round to nearest, give or take the odd code
(about 1 packed byte in 1600 of whisper-tiny.en's differs from its rtn): kept as the tool ships it.

Usage:

    python -m asrquant.export.onnx.ort_quantizer runs/tiny-onnx --variant ort-rtn --algorithm rtn
    python -m asrquant.export.onnx.ort_quantizer runs/tiny-onnx --variant ort-gptq --algorithm gptq \\
        --calib runs/data/wild-calib/manifest.jsonl --clips 32
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import sys
from pathlib import Path

import onnx

from ...artifact import verify
from ...errors import ArtifactError, AsrQuantError
from ...runtime.onnx_layout import DEFAULT_VARIANT, GRAPHS, graph_file
from .artifact import write_onnx_artifact

ALGORITHMS = ("default", "rtn", "k_quant", "hqq", "gptq")
# onnxruntime's Neural Compressor path (rtn, k_quant, gptq) writes every MatMul as 4 bits,
# whatever ``bits`` says (MatMulNBitsQuantizer._generate_q4_node_config).
FOUR_BITS_ONLY = ("rtn", "k_quant", "gptq")
ASYMMETRIC_ONLY = ("k_quant", "hqq")  # k_quant always stores zero points; HQQ's are float
NO_ACCURACY_LEVEL = ("hqq",)  # the HQQ quantizer writes MatMulNBits without that attribute
DEFAULT_CLIPS = 32


def check_options(algorithm: str, bits: int, symmetric: bool, accuracy_level: int, calib) -> None:
    """Refuse the options onnxruntime would silently ignore for ``algorithm``."""
    if algorithm not in ALGORITHMS:
        raise AsrQuantError(f"onnxruntime quantizer: unknown algorithm {algorithm!r} (one of {', '.join(ALGORITHMS)})")
    if algorithm in FOUR_BITS_ONLY and bits != 4:
        raise AsrQuantError(f"onnxruntime's {algorithm} writes 4-bit weights only, not {bits}")
    if algorithm in ASYMMETRIC_ONLY and symmetric:
        raise AsrQuantError(f"onnxruntime's {algorithm} is asymmetric only: leave out --symmetric")
    if algorithm in NO_ACCURACY_LEVEL and accuracy_level:
        raise AsrQuantError(f"onnxruntime's {algorithm} sets no accuracy_level: leave out --accuracy-level")
    if (algorithm == "gptq") != (calib is not None):
        raise AsrQuantError("gptq needs --calib MANIFEST" if algorithm == "gptq"
                            else f"{algorithm} takes no calibration (--calib is for gptq)")
    if algorithm == "hqq" and importlib.util.find_spec("torch") is None:
        raise AsrQuantError("onnxruntime's hqq runs in torch, which is not installed")


def algo_config(algorithm: str, bits: int, block_size: int, reader=None):
    """onnxruntime's config object for ``algorithm`` (None: its default blockwise RTN)."""
    from onnxruntime.quantization import matmul_nbits_quantizer as mnq

    if algorithm == "rtn":
        return mnq.RTNWeightOnlyQuantConfig()
    if algorithm == "k_quant":
        return mnq.KQuantWeightOnlyQuantConfig()
    if algorithm == "hqq":
        return mnq.HQQWeightOnlyQuantConfig(block_size=block_size, bits=bits)
    if algorithm == "gptq":
        # GPTQ's own block_size is the columns it updates at a time, not the quantization group
        # (the quantizer's block_size): its default 128 is kept.
        return mnq.GPTQWeightOnlyQuantConfig(calibration_data_reader=reader)
    return None


def ort_quantized(proto: onnx.ModelProto, bits: int, block_size: int, symmetric: bool, accuracy_level: int,
                  algorithm: str = "default", reader=None) -> onnx.ModelProto:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    q = MatMulNBitsQuantizer(proto, bits=bits, block_size=block_size, is_symmetric=symmetric,
                             accuracy_level=accuracy_level or None,
                             algo_config=algo_config(algorithm, bits, block_size, reader))
    # The bundled Neural Compressor code draws a progress bar on stdout.
    with contextlib.redirect_stdout(sys.stderr):
        q.process()
    return q.model.model


def _float_default(artifact: Path) -> dict:
    manifest = verify(artifact)
    default = manifest["variants"].get(DEFAULT_VARIANT)
    if default is None or default.get("recipe") is not None:
        raise ArtifactError(f"{artifact}: the default variant must be the float export to quantize it with onnxruntime")
    if default.get("float_storage") == "float16":
        raise ArtifactError(f"{artifact}: weights stored as float16 are not MatMul initializers onnxruntime can "
                            "quantize; export without --fp16")
    return manifest


def add_ort_variant(artifact: str | Path, variant: str = "ort-int4", bits: int = 4, block_size: int = 64,
                    symmetric: bool = False, accuracy_level: int = 0, algorithm: str = "default",
                    calib: str | Path | None = None, clips: int = DEFAULT_CLIPS) -> Path:
    """Quantize every weight MatMul of the default variant's graphs with onnxruntime's quantizer
    (the logits Gemm and the embedding stay float, as in our recipes) into ``variant``."""
    artifact = Path(artifact)
    check_options(algorithm, bits, symmetric, accuracy_level, calib)
    manifest = _float_default(artifact)
    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
    readers, calibration = {}, None
    if calib is not None:
        from .ort_calibration import calibration_clips, graph_readers

        calibration = calibration_clips(artifact, calib, clips)
        readers = graph_readers(artifact, calibration)
    protos = {g: ort_quantized(onnx.load(str(artifact / graph_file(g))), bits, block_size, symmetric,
                               accuracy_level, algorithm, readers.get(g))
              for g in GRAPHS}
    n_nodes = {g: sum(n.op_type == "MatMulNBits" for n in p.graph.node) for g, p in protos.items()}
    info = variant_info(algorithm, bits, block_size, symmetric, accuracy_level, n_nodes)
    if calibration is not None:
        info["calibration"] = calibration.to_dict()
    config = json.loads((artifact / "config.json").read_text())
    return write_onnx_artifact(artifact, protos, config=config, tokenizer_json=artifact / "tokenizer.json",
                               source=manifest["source"], variant=variant, variant_info=info)


def variant_info(algorithm: str, bits: int, block_size: int, symmetric: bool, accuracy_level: int,
                 n_nodes: dict[str, int]) -> dict:
    import onnxruntime

    sym = symmetric and algorithm not in ASYMMETRIC_ONLY
    return {
        "recipe": {"name": f"onnxruntime-{algorithm}-int{bits}-b{block_size}",
                   "tool": "onnxruntime MatMulNBitsQuantizer",
                   "onnxruntime": onnxruntime.__version__, "algorithm": algorithm, "bits": bits,
                   "block_size": block_size, "symmetric": sym},
        "accuracy_level": accuracy_level,
        "tensors": {"*": {"scheme": "float32"},
                    "MatMul weights": {"op": "MatMulNBits", "bits": bits, "block_size": block_size,
                                       "symmetric": sym, "nodes": n_nodes}},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m asrquant.export.onnx.ort_quantizer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact", help="an asrquant ONNX export whose default variant is float")
    p.add_argument("--variant", default="ort-int4")
    p.add_argument("--algorithm", default="default", choices=ALGORITHMS)
    p.add_argument("--bits", type=int, default=4, choices=(2, 4, 8))
    p.add_argument("--block-size", type=int, default=64)
    p.add_argument("--symmetric", action="store_true")
    p.add_argument("--accuracy-level", type=int, default=0, choices=range(5))
    p.add_argument("--calib", help="gptq: manifest.jsonl of the calibration clips (with reference text)")
    p.add_argument("--clips", type=int, default=DEFAULT_CLIPS, help="gptq: clips spread over the manifest")
    args = p.parse_args(argv)
    try:
        add_ort_variant(args.artifact, args.variant, args.bits, args.block_size, args.symmetric,
                        args.accuracy_level, args.algorithm, args.calib, args.clips)
    except AsrQuantError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.artifact} (variant {args.variant})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
