"""``asrquant export``: load -> (calibrate + quantize by recipe) -> an artifact for a runtime
(ONNX by default; compressed-tensors, NVFP4, MLX, ggml).

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
    asrquant export whisper-base --format ggml --ggml-type f32 --out runs/base-f32      (float32: a diagnostic)
    asrquant export whisper-base --target browser --calib CALIB/manifest.jsonl --out runs/base-web  (transformers.js)
    asrquant export whisper-base --format transformers.js --ort-q4 --out runs/base-web-ort  (its q4: onnxruntime RTN)
    asrquant export whisper-base --target cpu --calib CALIB/manifest.jsonl --eval EVAL/manifest.jsonl \\
        --out runs/base-cpu

A target (`asrquant targets`) is a named bundle of a recipe, a format and export options. Every
artifact carries a model card (README.md); with --eval it holds the bench's table against the float
source on those clips.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import shutil
import sys
from pathlib import Path

from .. import families, options
from ..artifact import prepare_out, replace_dir, staging_dir
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
    options.add_calib_clips(p)
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
    p.add_argument("--int8-skip", type=options.non_negative_int, default=None, metavar="N",
                   help="with --compute int8 (or --target cpu) and --calib: measure each encoder-graph Linear's "
                        "int8 cost (the teacher-forced KL it adds against the float model on calibration clips) "
                        "and keep the N costliest on float compute; the manifest records every cost")
    p.add_argument("--attention", default="unfused", choices=("unfused", "fused", "int8"),
                   help="unfused: the encoder's self-attention as plain ONNX ops (default); fused: as "
                        "onnxruntime's com.microsoft.MultiHeadAttention; int8: its scores (q k^T) as integer "
                        "GEMMs, faster on CPUs with VNNI/AMX, not bit-exact (Whisper)")
    p.add_argument("--cross-keys", default="float", choices=("float", "int8"),
                   help="float: the decoder's cross-attention keys as float32 (default); int8: as int8 codes the "
                        "encoder writes once per clip, their scores integer GEMMs at every step, faster on CPUs "
                        "with VNNI/AMX and a quarter of the keys' memory, not bit-exact (Whisper)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--format", default="onnx", choices=FORMATS,
                   help="onnx (onnxruntime), compressed-tensors (vLLM), nvfp4 (TensorRT-LLM), mlx (mlx-audio), "
                        "ggml (whisper.cpp), transformers.js (the browser: transformers.js / onnxruntime-web)")
    p.add_argument("--ggml-type", choices=("q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "f16", "f32"),
                   help="--format ggml without --recipe: round the float model to this block type by ggml's own "
                        "round to nearest (what whisper.cpp's quantize tool writes); default f16 (float16); "
                        "f32: float32, whisper.cpp then multiplies in float32 (a diagnostic and for exactness, "
                        "twice the file; whisper.cpp 1.8.5's CPU backend needs a patch to run it: "
                        "benchmarks/whisper-cpp/README.md)")
    p.add_argument("--ort-q4", action="store_true",
                   help="--format transformers.js without --recipe: the float graphs through onnxruntime's "
                        "MatMulNBitsQuantizer as transformers.js' q4 conversion does (round to nearest, blocks of "
                        "32, symmetric), in the _q4 files: what web users get today")
    p.add_argument("--target", help="a deployment target (asrquant targets: cpu, vllm, tensorrt, mlx, browser): its "
                                    "recipe, format and export options; takes no --recipe, --format or ONNX option")
    p.add_argument("--eval", metavar="MANIFEST", action="append",
                   help="bench the artifact beside its float source on these clips (repeatable) and put the "
                        "table in its model card (README.md)")
    p.add_argument("--threads", type=options.threads, default=2, help="threads for --eval's bench")
    p.set_defaults(func=run)


# Format -> (module under asrquant.export, its writer). A writer takes (model, FamilyInfo, the
# quantized Linears' QuantizedWeights, out_dir, recipe, **options); ONNX, whose graphs are the
# family's own, is written by the family's onnx_graphs.export_onnx instead.
WRITERS = {
    "compressed-tensors": ("compressed_tensors", "write_compressed_tensors"),
    "nvfp4": ("nvfp4", "write_nvfp4"),
    "mlx": ("mlx", "write_mlx"),
    "ggml": ("ggml", "write_ggml"),
    "transformers.js": ("transformers_js", "write_transformers_js"),
}
FORMATS = ("onnx", *WRITERS)
ONNX_ONLY = ("variant", "fp16", "accuracy_level", "compute", "attention", "cross_keys", "int8_skip")


def run(args) -> int:
    from ..quant.command import input_paths

    target = apply_target(args)
    check_options(args)
    prepare_out(args.out, overwrite=args.overwrite, adding=bool(args.variant),
                inputs=input_paths(args.model, args.recipe, args.calib))
    if args.variant and Path(args.out).is_dir() and any(Path(args.out).iterdir()) \
            and not families.is_onnx_artifact(args.out):
        raise AsrQuantError(f"{args.out}: not an ONNX export; --variant adds to one (export the default first)")
    if args.variant and args.eval:
        raise AsrQuantError("--eval measures a whole artifact; export the variant, then asrquant bench DIR@VARIANT")
    quantized, ckpt, recipe = checkpoint(args)
    out = Path(args.out)
    if args.variant:  # adds files to an existing ONNX artifact (its card stays as it was)
        write_artifact(args, target, ckpt, recipe, out)
        print(f"wrote {out} (variant {args.variant})", file=sys.stderr)
        return 0
    staging = staging_dir(out, "staging")
    try:
        write_artifact(args, target, ckpt, recipe, staging)
        evaluation = evaluate(args, staging, ckpt, quantized, recipe) if args.eval else None
        from .card import add_card, card_text
        from .hf_layout import family_info

        add_card(staging, card_text(staging, spec=args.model, family=ckpt.family, config=family_info(ckpt).config,
                                    fmt=args.format, recipe=recipe, target=target,
                                    report=quantized.report if quantized else None,
                                    calibration=quantized.calibration if quantized else None, evaluation=evaluation),
                 **({"target": target.to_dict()} if target else {}))
        replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"wrote {out} ({args.format}{f', target {target.name}' if target else ''}; model card {out}/README.md)",
          file=sys.stderr)
    return 0


def apply_target(args):
    """--target NAME: its recipe, format and ONNX options, refusing flags that would change them."""
    if not args.target:
        return None
    from .targets import load_target

    target = load_target(args.target)
    if target.format not in FORMATS:
        raise AsrQuantError(f"target {target.name}: format {target.format} has no writer")
    given = [flag for flag, on in (("--recipe", args.recipe), ("--format", args.format != "onnx"),
                                   ("--compute", args.compute != "float"), ("--fp16", args.fp16),
                                   ("--accuracy-level", args.accuracy_level is not None),
                                   ("--attention", args.attention != "unfused"),
                                   ("--cross-keys", args.cross_keys != "float")) if on]
    if given:
        raise AsrQuantError(f"--target {target.name} sets the recipe, format and export options itself; "
                            f"leave out {', '.join(given)} (or use them without --target)")
    args.recipe, args.format = target.recipe, target.format
    args.compute = target.options.get("compute", "float")
    args.fp16 = bool(target.options.get("fp16", False))
    args.attention = target.options.get("attention", "unfused")
    args.cross_keys = target.options.get("cross_keys", "float")
    return target


def checkpoint(args):
    """(QuantizedModel or None, checkpoint, recipe or None) for the export."""
    from ..quant.command import load_checkpoint, quantize
    from ..quant.saved import load_quantized
    from ..spec import parse

    parsed = parse(args.model)
    if args.calib_clips is not None and not (parsed.kind == "model" and (args.recipe or parsed.recipe)):
        raise AsrQuantError(f"--calib-clips: {args.model} is not quantized by this export (no recipe to calibrate)")
    if parsed.kind == "quantized" and not args.recipe:
        saved = load_quantized(parsed.model)
        return saved, saved.ckpt, saved.recipe
    if parsed.kind == "quantized" and args.target:
        raise AsrQuantError(f"{args.model}: already quantized; --target {args.target} quantizes the float model "
                            "by its own recipe")
    if parsed.kind == "model" and (args.recipe or parsed.recipe) and not (args.recipe and parsed.recipe):
        qm = quantize(parsed.model, args.recipe or parsed.recipe, args.calib, progress=not args.quiet,
                      clips=args.calib_clips)
        return qm, qm.ckpt, qm.recipe
    ckpt, recipe = load_checkpoint(args.model, args.recipe, args.calib, progress=not args.quiet)
    return None, ckpt, recipe


def write_artifact(args, target, ckpt, recipe, out: Path) -> None:
    if args.format != "onnx":
        options = {"ggml_type": args.ggml_type} if args.format == "ggml" else {}
        export_format(args.format, ckpt, out, recipe, **options)
        if getattr(args, "ort_q4", False):
            from .transformers_js_ort import ort_q4_files

            ort_q4_files(out)
        return
    smooth = args.compute == "int8" and (target is None or target.options.get("smooth", True))
    onnx_graphs = families.module(ckpt.family, "onnx_graphs")
    # only a family whose graphs offer other attention takes the options (Whisper's)
    attention = {"attention": args.attention} if args.attention != "unfused" else {}
    if attention and "attention" not in inspect.signature(onnx_graphs.export_onnx).parameters:
        raise AsrQuantError(f"--attention {args.attention}: the {ckpt.family} ONNX export has only unfused attention")
    if args.cross_keys != "float":
        if "cross_keys" not in inspect.signature(onnx_graphs.export_onnx).parameters:
            raise AsrQuantError(f"--cross-keys {args.cross_keys}: the {ckpt.family} ONNX export has only float keys")
        attention["cross_keys"] = args.cross_keys
    choice = {}
    if args.int8_skip is not None:
        choice = {"int8_skip": args.int8_skip, "float_model": float_model(args.model, ckpt)}
    onnx_graphs.export_onnx(ckpt, out, recipe=recipe, variant=args.variant, accuracy_level=args.accuracy_level,
                            fp16=args.fp16, compute=args.compute, calib=args.calib if smooth or choice else None,
                            smooth=smooth, progress=not args.quiet, **attention, **choice)


def float_model(spec: str, ckpt):
    """The float model the int8 costs are measured against: ``ckpt``'s own when nothing in it is
    quantized, else its source loaded again (its distributions are all that is used)."""
    from ..quant.linear import QuantEmbedding, QuantLinear

    if not any(isinstance(m, (QuantLinear, QuantEmbedding)) for m in ckpt.model.modules()):
        return None
    return families.module(ckpt.family, "load").load(quantized_source(spec)).model


def evaluate(args, artifact: Path, ckpt, quantized, recipe) -> str:
    """The bench on --eval: the float source, then the artifact (ONNX: itself; the other formats:
    the torch fake-quant model their readers give back bit for bit, saved beside the artifact)."""
    from ..bench import bench
    from ..cpu import describe_cpu
    from ..eval.report import card_section

    spec = str(artifact)
    saved = None
    if args.format != "onnx":
        if quantized is None:
            return ""  # a float export in a non-ONNX format: nothing quantized to compare
        from ..quant.saved import save_quantized

        saved = artifact.parent / f".{artifact.name}.fake-quant"
        save_quantized(quantized, saved)
        spec = str(saved)
    try:
        source = quantized_source(args.model)
        report = bench([source, spec], args.eval, threads=args.threads, progress=not args.quiet)
        report["settings"]["cpu"] = describe_cpu()
    finally:
        if saved is not None:
            shutil.rmtree(saved, ignore_errors=True)
    how = "onnxruntime, this directory" if args.format == "onnx" else \
        f"the torch fake-quant model with the weights this {args.format} checkpoint holds (bit for bit)"
    return card_section(report, labels=[f"float source (`{Path(source).name}`, torch fp32)", f"this artifact ({how})"],
                        command=" ".join(["asrquant", "export", *sys.argv[2:]]) if len(sys.argv) > 2 else None)


def quantized_source(model: str) -> str:
    """The float model a bench compares with: the spec itself, or the source a saved model records."""
    from ..spec import parse

    parsed = parse(model)
    if parsed.kind == "quantized":
        import json

        return json.loads((Path(parsed.model) / "config.json").read_text()).get("source", parsed.model)
    return parsed.model


def check_options(args) -> None:
    """Before any work: the ONNX-only flags are refused with another --format, --ggml-type without ggml."""
    if getattr(args, "ggml_type", None) and args.format != "ggml":
        raise AsrQuantError(f"--ggml-type is a ggml option; --format {args.format} does not take it")
    if getattr(args, "ort_q4", False) and (args.format != "transformers.js" or args.recipe):
        raise AsrQuantError("--ort-q4 quantizes a float --format transformers.js export with onnxruntime: "
                            "use it with --format transformers.js and without --recipe or --target")
    int8_skip = getattr(args, "int8_skip", None)
    if args.format == "onnx" and int8_skip is not None:
        if args.compute != "int8":
            raise AsrQuantError("--int8-skip chooses which encoder Linears run int8: use it with --compute int8 "
                                "(or --target cpu)")
        if not args.calib:
            raise AsrQuantError("--int8-skip measures each encoder Linear's int8 cost on calibration clips: "
                                "give --calib MANIFEST")
    if args.format == "onnx":
        return
    given = {"variant": args.variant, "fp16": args.fp16, "accuracy_level": args.accuracy_level is not None,
             "compute": args.compute != "float", "attention": args.attention != "unfused",
             "cross_keys": getattr(args, "cross_keys", "float") != "float",
             "int8_skip": int8_skip is not None}
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
