"""``asrquant export``: load -> (calibrate + quantize by recipe) -> ONNX artifact.

    asrquant export whisper-base --out runs/base-onnx
    asrquant export whisper-base --recipe gptq-int4-g64 --calib CALIB/manifest.jsonl \\
        --out runs/base-onnx --variant int4
    asrquant export runs/base-gptq --out runs/base-onnx --variant gptq   (saved by asrquant quantize)
    asrquant export runs/base-gptq --out runs/base-onnx --variant gptq-i8 --compute int8
    asrquant export QWEN3_ASR_DIR --recipe gptq-int4-g64 --calib CALIB/manifest.jsonl --out runs/qwen-onnx
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a model (float, or quantized by a recipe) to an ONNX artifact",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="registry name (whisper-base), model directory, or a model saved by asrquant quantize")
    p.add_argument("--out", required=True, metavar="DIR", help="the artifact directory")
    p.add_argument("--recipe", help="built-in recipe name or recipe .toml (default: no quantization)")
    p.add_argument("--calib", metavar="MANIFEST",
                   help="calibration clips (manifest.jsonl): for recipes that need them, and with --compute int8 "
                        "for the encoder's input smoothing (Whisper)")
    p.add_argument("--variant", help="add the export to DIR as this variant (suffixed files beside the default)")
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
    p.add_argument("--format", default="onnx", choices=("onnx", "compressed-tensors", "nvfp4", "mlx"),
                   help="onnx (onnxruntime), compressed-tensors (vLLM), nvfp4 (TensorRT-LLM), mlx (mlx-audio)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.format != "onnx":
        from .hf_layout import run_format

        return run_format(args)
    from ..models.whisper.onnx_graphs import export_onnx

    ckpt, recipe = load(args.model, args.recipe, args.calib, progress=not args.quiet)
    if getattr(ckpt, "family", "whisper") == "qwen3-asr":
        from ..models.qwen3_asr.onnx_graphs import export_onnx_qwen3_asr

        out = export_onnx_qwen3_asr(ckpt, args.out, recipe=recipe, variant=args.variant,
                                    accuracy_level=args.accuracy_level, fp16=args.fp16, compute=args.compute)
    else:
        mels, clips = (smoothing_mels(ckpt, args.calib, progress=not args.quiet)
                       if args.compute == "int8" and args.calib else (None, None))
        out = export_onnx(ckpt.model, args.out, checkpoint=ckpt, recipe=recipe, variant=args.variant,
                          accuracy_level=args.accuracy_level, fp16=args.fp16, compute=args.compute,
                          smooth_mels=mels, smooth_clips=clips, progress=not args.quiet)
    print(f"wrote {out}" + (f" (variant {args.variant})" if args.variant else ""), file=sys.stderr)
    return 0


SMOOTHING_CLIPS = 16


def smoothing_mels(ckpt, calib: str, progress: bool = True) -> tuple[list, dict]:
    """Log-mels of SMOOTHING_CLIPS clips of ``calib`` (spread over the manifest, as a recipe's
    calibration picks them) for the int8 encoder's smoothing, and which clips they are."""
    from ..models.whisper.saved import calibration_samples

    samples, cal = calibration_samples(ckpt, calib, SMOOTHING_CLIPS, progress=progress, decode=False)
    return [s.mel for s in samples], cal.to_dict()


def load(model: str, recipe: str | None = None, calib: str | None = None, progress: bool = True):
    """(checkpoint, recipe or None): a model as it is, quantized now by ``recipe``, or a model
    saved by ``asrquant quantize`` (its own recipe)."""
    from ..errors import AsrQuantError
    from ..models.qwen3_asr.saved import is_qwen3_asr_spec
    from ..models.whisper.load import load_whisper
    from ..models.whisper.saved import is_quantized_dir, load_quantized, quantize_checkpoint

    if is_quantized_dir(model):
        if recipe:
            raise AsrQuantError(f"{model}: already quantized (by its own recipe); leave out --recipe")
        saved = load_quantized(model)
        return saved.ckpt, saved.recipe
    if recipe:
        quantized = quantize_checkpoint(model, recipe, calib, progress=progress)
        return quantized.ckpt, quantized.recipe
    if is_qwen3_asr_spec(model):
        from ..models.qwen3_asr.load import load_qwen3_asr

        return load_qwen3_asr(model), None
    return load_whisper(model), None
