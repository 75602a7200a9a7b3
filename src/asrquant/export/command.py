"""``asrquant export``: load -> (calibrate + quantize by recipe) -> an artifact for a runtime
(ONNX by default; compressed-tensors, NVFP4, MLX).

    asrquant export whisper-base --out runs/base-onnx
    asrquant export whisper-base --recipe gptq-int4-g64 --calib CALIB/manifest.jsonl \\
        --out runs/base-onnx --variant int4
    asrquant export runs/base-gptq --out runs/base-onnx --variant gptq   (saved by asrquant quantize)
    asrquant export runs/base-gptq --out runs/base-onnx --variant gptq-i8 --compute int8
    asrquant export QWEN3_ASR_DIR --recipe gptq-int4-g64 --calib CALIB/manifest.jsonl --out runs/qwen-onnx
    asrquant export whisper-base --recipe gptq-int4-g64 --calib CALIB/manifest.jsonl --format mlx --out runs/base-mlx
    asrquant export whisper-base --format ggml --out runs/base-ggml                  (whisper.cpp, float16)
    asrquant export whisper-base --recipe ggml-q4_0-gptq --calib CALIB/manifest.jsonl --format ggml --out runs/base-q4
    asrquant export whisper-base --format ggml --ggml-type q4_0 --out runs/base-q4-rtn  (ggml's own rounding)
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .. import families, options
from ..errors import AsrQuantError


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a model (float, or quantized by a recipe) to an ONNX artifact",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="registry name (whisper-base), model directory, or a model saved by asrquant quantize")
    p.add_argument("--out", required=True, metavar="DIR", help="the artifact directory")
    p.add_argument("--recipe", help="built-in recipe name or recipe .toml (default: no quantization)")
    p.add_argument("--calib", metavar="MANIFEST",
                   help="calibration clips (manifest.jsonl): for recipes that need them, and with --compute int8 "
                        "for the encoder's input smoothing (Whisper)")
    p.add_argument("--variant", type=options.variant_name,
                   help="add the export to DIR as this variant (suffixed files beside the default); "
                        "DIR must be an ONNX export of ours from the same source, or absent")
    p.add_argument("--overwrite", action="store_true",
                   help="replace DIR if it exists (it is refused otherwise, and never the input itself)")
    p.add_argument("--accuracy-level", type=int, default=None, choices=range(5), metavar="N",
                   help="MatMulNBits accuracy_level: 0 float compute, 4 int8 activations (faster); "
                        "default: 4 for 8-bit weights, 0 for fewer bits")
    p.add_argument("--fp16", action="store_true", help="store the weights kept in float as float16 (half the disk)")
    p.add_argument("--compute", default="float", choices=("float", "int8"),
                   help="float: weights as the recipe stored them, the fake-quant numbers (default); int8: the "
                        "encoder's Linears stored int8 per channel and run as integer GEMMs on activations "
                        "quantized per row (much faster on CPUs with VNNI/AMX; not bit-exact), decoder "
                        "MatMulNBits at accuracy_level 4; with --calib, the encoder's inputs smoothed per "
                        "channel (SmoothQuant) where that lowers the int8 error on the calibration clips")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--format", default="onnx", choices=FORMATS,
                   help="onnx (onnxruntime), compressed-tensors (vLLM), nvfp4 (TensorRT-LLM), mlx (mlx-audio), "
                        "ggml (whisper.cpp)")
    p.add_argument("--ggml-type", choices=("q4_0", "q4_1", "q5_0", "q5_1", "q8_0"),
                   help="--format ggml without --recipe: round the float model to this block type by ggml's own "
                        "round to nearest (what whisper.cpp's quantize tool writes); default float16")
    p.set_defaults(func=run)


# Format -> (module under asrquant.export, its writer). A writer takes (model, FamilyInfo, the
# quantized Linears' QuantizedWeights, out_dir, recipe, **options); ONNX, whose graphs are the
# family's own, is written by the family's onnx_graphs.export_onnx instead.
WRITERS = {
    "compressed-tensors": ("compressed_tensors", "write_compressed_tensors"),
    "nvfp4": ("nvfp4", "write_nvfp4"),
    "mlx": ("mlx", "write_mlx"),
    "ggml": ("ggml", "write_ggml"),
}
FORMATS = ("onnx", *WRITERS)
ONNX_ONLY = ("variant", "fp16", "accuracy_level", "compute")


def run(args) -> int:
    from ..artifact import prepare_out
    from ..quant.command import input_paths, load_checkpoint  # torch: imported only when exporting

    check_options(args)
    prepare_out(args.out, overwrite=args.overwrite, adding=bool(args.variant),
                inputs=input_paths(args.model, args.recipe, args.calib))
    if args.variant and Path(args.out).is_dir() and any(Path(args.out).iterdir()) \
            and not families.is_onnx_artifact(args.out):
        raise AsrQuantError(f"{args.out}: not an ONNX export; --variant adds to one (export the default first)")
    ckpt, recipe = load_checkpoint(args.model, args.recipe, args.calib, progress=not args.quiet)
    if args.format == "onnx":
        onnx_graphs = families.module(ckpt.family, "onnx_graphs")
        out = onnx_graphs.export_onnx(ckpt, args.out, recipe=recipe, variant=args.variant,
                                      accuracy_level=args.accuracy_level, fp16=args.fp16, compute=args.compute,
                                      calib=args.calib if args.compute == "int8" else None, progress=not args.quiet)
        print(f"wrote {out}" + (f" (variant {args.variant})" if args.variant else ""), file=sys.stderr)
        return 0
    options = {"ggml_type": args.ggml_type} if args.format == "ggml" else {}
    out = export_format(args.format, ckpt, args.out, recipe, **options)
    print(f"wrote {out} ({args.format})", file=sys.stderr)
    return 0


def check_options(args) -> None:
    """Before any work: the ONNX-only flags are refused with another --format, --ggml-type without ggml."""
    if getattr(args, "ggml_type", None) and args.format != "ggml":
        raise AsrQuantError(f"--ggml-type is a ggml option; --format {args.format} does not take it")
    if args.format == "onnx":
        return
    given = {"variant": args.variant, "fp16": args.fp16, "accuracy_level": args.accuracy_level is not None,
             "compute": args.compute != "float"}
    for option in ONNX_ONLY:
        if given[option]:
            flag = "--" + option.replace("_", "-")
            raise AsrQuantError(f"{flag} is an ONNX option; --format {args.format} does not take it")


def export_format(fmt: str, ckpt, out_dir: str | Path, recipe=None, **options) -> Path:
    """Write ``ckpt.model`` (quantized in place by ``recipe``) in format ``fmt`` to ``out_dir``.

    ``options`` go to the writer (mlx: ``scale_dtype``; nvfp4: ``activation_amax``; ggml: ``ggml_type``).
    """
    from ..quant.calibrate import quantized_weights
    from ..quant.linear import QuantLinear
    from .hf_layout import family_info

    if fmt not in WRITERS:
        raise AsrQuantError(f"unknown format {fmt!r} (expected one of: {', '.join(WRITERS)}; onnx is written by "
                            "the family's onnx_graphs.export_onnx)")
    module, writer = WRITERS[fmt]
    write = getattr(importlib.import_module(f"{__package__}.{module}"), writer)
    model = ckpt.model
    # A quantized embedding table is written as its dequantized float table (float32, exact):
    # these runtimes keep embeddings in float, and the numbers stay those the recipe chose.
    qweights = {n: qw for n, qw in quantized_weights(model).items() if isinstance(model.get_submodule(n), QuantLinear)}
    return write(model, family_info(ckpt), qweights, out_dir, recipe, **options)
