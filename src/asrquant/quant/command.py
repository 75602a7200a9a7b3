"""``asrquant quantize`` and the one way every command gets a model's checkpoint: load ->
calibrate on real audio -> quantize by recipe, for any family (found by asrquant.families).

    asrquant quantize whisper-base --recipe gptq-int4-g64 --calib CALIB/manifest.jsonl --out runs/base-gptq
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from .. import families
from ..errors import AsrQuantError
from ..spec import parse
from .calibrate import QuantReport, quantize_model
from .recipe import Recipe, load_recipe
from .saved import QuantizedModel, load_quantized, save_quantized


def quantize(model: str, recipe: str | Recipe, calib: str | Path | None = None,
             progress: bool = True, clips: int | None = None) -> QuantizedModel:
    """Load ``model`` (a checkpoint of any family), calibrate on the clips of ``calib`` and
    quantize by ``recipe``; ``clips`` replaces the recipe's ``[calibration] clips`` (and is
    recorded with it)."""
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    recipe = with_clips(recipe, clips, calib)
    family = families.get(families.family_of(model))
    calib_role = family.module("calib")
    calib_role.check_recipe(recipe)
    if recipe.needs_calibration and calib is None:
        raise AsrQuantError(f"recipe {recipe.name!r} calibrates on audio: give --calib MANIFEST")
    ckpt = family.module("load").load(model)
    samples, cal = None, None
    if calib is not None:
        samples, cal = calib_role.calibration_samples(ckpt, calib, recipe.clips or 32, progress)
    report = quantize_model(ckpt.model, recipe, samples, progress=progress)
    return QuantizedModel(ckpt, recipe, report, cal)


def with_clips(recipe: Recipe, clips: int | None, calib) -> Recipe:
    """``recipe`` taking ``clips`` calibration clips (``--calib-clips``), or as it is for None."""
    if clips is None:
        return recipe
    if clips < 1:
        raise AsrQuantError(f"--calib-clips must be at least 1, not {clips}")
    if calib is None or not recipe.needs_calibration:
        raise AsrQuantError(f"--calib-clips: recipe {recipe.name!r} "
                            + ("calibrates on no clips" if not recipe.needs_calibration else "needs --calib as well"))
    return dataclasses.replace(recipe, clips=clips)


def load_checkpoint(spec: str, recipe: str | None = None, calib: str | None = None, progress: bool = True):
    """(checkpoint, recipe or None) of a torch SPEC (see asrquant.spec): a directory saved by
    ``quantize`` (its own recipe), ``MODEL@RECIPE`` or ``recipe`` quantized now (calibrated on
    ``calib``), or a checkpoint as it is."""
    parsed = parse(spec)
    if parsed.kind not in ("model", "quantized"):
        raise AsrQuantError(f"{spec}: not a model checkpoint (a {parsed.kind})")
    if parsed.recipe and recipe:
        raise AsrQuantError(f"{spec}: a recipe twice (in the spec and as --recipe)")
    recipe = recipe or parsed.recipe
    if parsed.kind == "quantized":
        if recipe:
            raise AsrQuantError(f"{spec}: already quantized (by its own recipe); leave out --recipe")
        saved = load_quantized(parsed.model)
        return saved.ckpt, saved.recipe
    if recipe:
        quantized = quantize(parsed.model, recipe, calib, progress=progress)
        return quantized.ckpt, quantized.recipe
    return families.module(parsed.family, "load").load(parsed.model), None


def input_paths(model: str, recipe: str | None = None, calib: str | None = None) -> list[str]:
    """What a command reads, so that --out is never one of them (nor a directory holding one):
    the model's directory, the recipe file, the calibration manifest and its audio directory."""
    paths = [parse(model).model if not model.startswith(("faster-whisper:", "transformers:")) else None]
    if recipe and Path(recipe).is_file():
        paths.append(recipe)
    if calib:
        paths += [calib, str(Path(calib).parent) if Path(calib).is_file() else calib]
    return [p for p in paths if p]


def cmd_quantize(args) -> int:
    from ..artifact import prepare_out

    prepare_out(args.out, overwrite=args.overwrite, inputs=input_paths(args.model, args.recipe, args.calib))
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    qm = quantize(args.model, args.recipe, args.calib, progress=not args.quiet, clips=args.calib_clips)
    save_quantized(qm, args.out)
    report = qm.report
    size = (Path(args.out) / "model.safetensors").stat().st_size
    print(report.to_markdown() if args.verbose else _summary(report))
    print(f"wrote {args.out} ({size / 1e6:.1f} MB of weights) in {time.perf_counter() - t0:.1f} s "
          f"including loading and calibration")
    return 0


def _summary(report: QuantReport) -> str:
    err = report.mean_rel_output_error
    return (f"{report.recipe}: {report.what_quantized()} quantized, {report.mean_bits_per_weight:.3f} bits per "
            f"quantized weight, {len(report.kept)} kept in float; {report.n_samples} calibration clips; "
            f"mean relative output error {'n/a' if err is None else f'{err:.4f}'}; {report.seconds:.1f} s "
            "quantizing (--verbose for the per-layer table)")
