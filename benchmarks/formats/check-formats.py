"""Round trip and transcript check of every export format on whisper-tiny.en and all eight vitw8
clips, and the weight round trip on a small random Qwen3-ASR.

Per format: quantize tiny.en by the recipe (calibrating on the dev set where the recipe asks),
export, read the files back the way the format's runtime does (compressed-tensors' own
decompression, the NVFP4 definition, mlx.core.dequantize), compare the weights with our
dequantized ones, rebuild a plain torch Whisper from the read-back tensors alone, and decode
every vitw8 clip greedily with it and with the fake-quant model through the same torch runner.

    .venv/bin/python benchmarks/formats/check-formats.py [--clips 8] [--threads 2]

Prints one markdown table. mlx_whisper / mlx-audio's own loaders are tried when importable.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]  # the repository root (this file is in benchmarks/formats/)
sys.path.insert(0, str(ROOT / "tests" / "export"))
sys.path.insert(0, str(ROOT / "tests"))
DATA = ROOT.parent / "shared" / "data"

import format_fixtures as ff  # noqa: E402

from asrquant.export import readers  # noqa: E402
from asrquant.export.command import export_format  # noqa: E402
from asrquant.export.hf_layout import family_info  # noqa: E402
from asrquant.models.whisper.load import load_whisper  # noqa: E402
from asrquant.quant.calibrate import quantize_model, quantized_weights  # noqa: E402
from asrquant.quant.qtensor import dequantize  # noqa: E402

CASES = [  # (format, recipe, reader, rebuild)
    ("compressed-tensors", "gptq-int4-g64", readers.read_compressed_tensors, ff.whisper_from_hf_readback),
    ("compressed-tensors", "mixed-8attn-4mlp", readers.read_compressed_tensors, ff.whisper_from_hf_readback),
    ("compressed-tensors", "nvfp4-awq-lite-folded", readers.read_compressed_tensors, ff.whisper_from_hf_readback),
    ("compressed-tensors", "nvfp4-awq-lite-folded", partial(readers.read_compressed_tensors, fp4_float32=True),
     ff.whisper_from_hf_readback),
    ("nvfp4", "nvfp4-awq-lite", readers.read_nvfp4, ff.whisper_from_hf_readback),
    ("mlx", "mixed-8attn-4mlp", readers.read_mlx_with_mlx, ff.whisper_from_mlx_readback),
    ("mlx", "mxfp4", readers.read_mlx_with_mlx, ff.whisper_from_mlx_readback),
]


def quantized(spec: str, calib_n: int):
    """tiny.en quantized by a built-in recipe; 'nvfp4-awq-lite-folded' keeps only AWQ scales that
    fold into LayerNorms (what a format without an input scale can carry)."""
    from asrquant.models.whisper.calib import calibration_samples
    from asrquant.quant.recipe import load_recipe

    name = spec.removesuffix("-folded")
    ckpt, recipe = load_whisper("whisper-tiny.en"), load_recipe(name)
    samples = None
    if recipe.needs_calibration:
        samples, _ = calibration_samples(ckpt, DATA / "dev" / "manifest.jsonl", calib_n, progress=False)
    if spec.endswith("-folded"):
        recipe = _folded_only(recipe)
    quantize_model(ckpt.model, recipe, samples, progress=False)
    return ckpt, recipe


def _folded_only(recipe):
    """The recipe with AWQ kept on Linears fed by a LayerNorm and RTN elsewhere."""
    from dataclasses import replace

    from asrquant.quant.recipe import Rule

    rule = recipe.rules[0]
    norm_fed = ("*.attn.query", "*.attn.key", "*.attn.value", "*.cross_attn.query", "*.mlp.fc1")
    fed_by_norm = Rule(rule.scheme, rule.algorithm, norm_fed, rule.kinds, rule.options)
    rest = Rule(rule.scheme, "rtn", (), rule.kinds)
    return replace(recipe, name=recipe.name + "-folded", rules=(fed_by_norm, rest))


def weight_check(ckpt, fmt: str, rb) -> tuple[int, int, float]:
    """(layers read back bit for bit, layers, largest |difference|)."""
    fam, exact, worst = family_info(ckpt), 0, 0.0
    qws = quantized_weights(ckpt.model)
    for name, qw in qws.items():
        key = fam.mlx.module(name) if fmt == "mlx" else fam.hf_module(name)
        back, ours = rb.weights[key].float(), dequantize(qw)
        exact += torch.equal(back, ours)
        worst = max(worst, float((back - ours).abs().max()))
    return exact, len(qws), worst


def size_mb(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.iterdir() if p.suffix == ".safetensors") / 1e6


def check_whisper(fmt, spec, reader, rebuild, clips, calib_n, work: Path) -> dict:
    t0 = time.perf_counter()
    ckpt, recipe = quantized(spec, calib_n)
    out = export_format(fmt, ckpt, work / f"{fmt}-{spec}", recipe)
    rb = reader(out)
    exact, n, worst = weight_check(ckpt, fmt, rb)
    ours = ff.greedy_tokens(ckpt, ckpt.model, clips)
    theirs = ff.greedy_tokens(ckpt, rebuild(ckpt, rb), clips)
    same = sum(a == b for a, b in zip(ours, theirs))
    return {"model": "whisper-tiny.en", "format": fmt, "recipe": spec, "exact": f"{exact}/{n}", "max_diff": worst,
            "tokens": f"{same}/{len(clips)}", "MB": round(size_mb(out), 1), "s": round(time.perf_counter() - t0, 1),
            "dir": out}


def check_qwen(fmt, spec, reader, work: Path) -> dict:
    import os

    os.environ.setdefault("ASRQUANT_CACHE", str(work / "cache"))
    ckpt, recipe = ff.quantized_qwen(work / f"qwen-{fmt}-{spec}", spec)
    out = export_format(fmt, ckpt, work / f"qwen-out-{fmt}-{spec}", recipe)
    rb = reader(out)
    fam, exact, worst, n = family_info(ckpt), 0, 0.0, 0
    for name, qw in quantized_weights(ckpt.model).items():
        key = fam.hf_module(name)
        back = rb.weights.get(key, rb.tensors.get(f"{key}.weight"))  # MLX keeps the audio tower float
        exact += torch.equal(back.float(), dequantize(qw))
        worst, n = max(worst, float((back.float() - dequantize(qw)).abs().max())), n + 1
    return {"model": "qwen3-asr (small random)", "format": fmt, "recipe": spec, "exact": f"{exact}/{n}",
            "max_diff": worst, "tokens": "-", "MB": round(size_mb(out), 2), "s": "-", "dir": out}


def try_mlx_loaders(rows: list[dict]) -> list[str]:
    """Load the MLX outputs with mlx_whisper / mlx-audio when those packages are importable."""
    notes = []
    for row in rows:
        if row["format"] != "mlx" or row["model"] != "whisper-tiny.en":
            continue
        try:
            from mlx_audio.stt.utils import load_model

            m = load_model(str(row["dir"]))
            mlp, attn = m.encoder.blocks[0].mlp1, m.encoder.blocks[0].attn.query
            notes.append(f"mlx-audio loads {row['recipe']}: {type(mlp).__name__} mlp1 {getattr(mlp, 'bits', '-')}-bit"
                         f" / attn.query {getattr(attn, 'bits', '-')}-bit ({getattr(mlp, 'mode', 'affine')})")
        except ImportError:
            notes.append("mlx-audio not importable: its loader was not tried")
        except Exception as e:  # noqa: BLE001 - report whatever the third-party loader says
            notes.append(f"mlx-audio failed on {row['recipe']}: {type(e).__name__}: {e}")
    return notes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--calib", type=int, default=16, help="dev clips for recipes that calibrate")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clips = [json.loads(x) for x in (DATA / "vitw8" / "manifest.jsonl").read_text().splitlines() if x.strip()]
    clips = clips[: args.clips]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for fmt, spec, reader, rebuild in CASES:
            rows.append(check_whisper(fmt, spec, reader, rebuild, clips, args.calib, work))
            print(f"done {fmt} {spec}: {rows[-1]}", file=sys.stderr)
        for fmt, spec, reader in (("compressed-tensors", "rtn-int4-g64", readers.read_compressed_tensors),
                                  ("nvfp4", ff.NVFP4_RTN, readers.read_nvfp4),
                                  ("mlx", "mixed-8attn-4mlp", readers.read_mlx_with_mlx)):
            rows.append(check_qwen(fmt, spec, reader, work))
        notes = try_mlx_loaders(rows)
    print("| model | format | recipe | weights bit for bit | max abs diff | tokens identical | MB | s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        recipe = "nvfp4-rtn" if "[[rules]]" in r["recipe"] else r["recipe"]
        print(f"| {r['model']} | {r['format']} | {recipe} | {r['exact']} | {r['max_diff']:.3g} | {r['tokens']} "
              f"| {r['MB']} | {r['s']} |")
    for n in notes:
        print(f"\n{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
