"""`asrquant quantize`: calibrate a Whisper checkpoint on real audio, quantize it by a recipe,
and save / load the result in asrquant's own format.

The saved directory (written atomically, verified on load):

    config.json          family, dims, decoding settings, source model and its sha256
    model.safetensors    float tensors kept as they are (LayerNorms carry folded AWQ scales) and,
                         per quantized Linear or embedding table N: N.qweight.{codes,scales,
                         zero_points,global_scale,input_scale} (codes packed along the input axis)
    quantization.json    recipe, the scheme of every quantized tensor, the report, and the
                         calibration clips (manifest, ids, audio sha256) so a bench can refuse
                         to evaluate on them
    tokenizer.json
    manifest.json        sha256 of every file
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ...artifact import atomic_dir, sha256_file, verify, write_manifest
from ...quant.calibrate import CalibSample, QuantReport, quantize_model, quantized_weights
from ...errors import ArtifactError, AsrQuantError
from .model import SINUSOID_ROUNDINGS, Whisper, WhisperDims, sinusoid_rounding, sinusoids_rounded
from .load import WhisperCheckpoint, load_whisper
from ...quant.linear import QuantEmbedding, QuantLinear
from ...quant.qtensor import QuantizedWeight, pack_int, unpack_int
from ...quant.recipe import Recipe, load_recipe, recipe_from_dict
from ...quant.scheme import QuantScheme

KIND = "asrquant-quantized"
POSITIONS = "encoder.positional_embedding"
# Bumped when what a saved directory holds changes, so caches keyed on it are rebuilt
# (2: the encoder positions' rounding is recorded).
SAVED_VERSION = 2


@dataclass
class Calibration:
    manifest: str
    ids: list[str]
    audio_sha256: list[str]

    def to_dict(self) -> dict:
        return {"manifest": self.manifest, "ids": self.ids, "audio_sha256": self.audio_sha256}


@dataclass
class QuantizedWhisper:
    ckpt: WhisperCheckpoint  # its model holds QuantLinears
    recipe: Recipe
    report: QuantReport | dict
    calibration: Calibration | None


# ---- calibration data -----------------------------------------------------------------------

def spread(n_items: int, n: int) -> list[int]:
    """``n`` indices spread evenly over ``n_items`` (every category of a sorted manifest is seen)."""
    if n >= n_items:
        return list(range(n_items))
    return sorted({int(i) for i in np.linspace(0, n_items - 1, n).round()})


def calibration_samples(ckpt: WhisperCheckpoint, manifest: str | Path, n: int,
                        progress: bool = True, decode: bool = True) -> tuple[list[CalibSample], Calibration]:
    """Log-mels of ``n`` clips and the tokens the decoder sees for each: the prompt, then the
    reference transcript (teacher forcing) or, where a clip has none, the model's own greedy
    output, then the end token — so every decoding position is calibrated, not only the prompt.
    ``decode=False`` skips that greedy decoding (prompt and end token only) for callers that use
    the log-mels alone."""
    from ...audio import load_audio
    from ...eval.manifest import read_manifest
    from ...features import log_mel
    from .torch_session import WhisperTorchSession
    from .tokenizer import WhisperTokenizer
    from .transcribe import WINDOW_SAMPLES, WhisperGeneration, WhisperTranscriber

    clips = read_manifest(manifest)
    chosen = [clips[i] for i in spread(len(clips), n)]
    tok = WhisperTokenizer(ckpt.tokenizer_json, ckpt.multilingual)
    transcriber = None
    samples, cal = [], Calibration(str(manifest), [], [])
    for clip in _progress(chosen, progress, "calibration clips"):
        audio = load_audio(clip.audio)[:WINDOW_SAMPLES]
        prompt = tok.prompt(clip.lang or "en" if ckpt.multilingual else None)
        if clip.text.strip():
            text_ids = tok.encode(" " + clip.text.strip())
        elif not decode:
            text_ids = []
        else:
            if transcriber is None:
                gen = WhisperGeneration(tuple(ckpt.suppress_ids), tuple(ckpt.suppress_ids_begin), ckpt.dims.n_mels)
                transcriber = WhisperTranscriber(WhisperTorchSession(ckpt.model), tok, gen)
            text_ids = transcriber.transcribe(audio, clip.lang).tokens
        tokens = (prompt + text_ids)[: ckpt.dims.n_text_ctx - 1] + [tok.eot]
        samples.append(CalibSample(log_mel(audio, n_mels=ckpt.dims.n_mels), np.asarray(tokens, dtype=np.int64)))
        cal.ids.append(clip.id)
        cal.audio_sha256.append(sha256_file(clip.audio))
    return samples, cal


def _progress(items, progress: bool, what: str):
    if not progress:
        return items
    from rich.progress import track

    return track(items, description=what, transient=True)


def quantize_checkpoint(spec: str, recipe: str | Recipe, calib: str | Path | None = None, progress: bool = True):
    """By the family of ``spec`` (its config, not its name): Qwen3-ASR or Whisper."""
    from ..qwen3_asr.saved import is_qwen3_asr_spec, quantize_qwen3_asr

    if is_qwen3_asr_spec(spec):
        return quantize_qwen3_asr(spec, recipe, calib, progress)
    return quantize_whisper(spec, recipe, calib, progress)


def quantize_whisper(spec: str, recipe: str | Recipe, calib: str | Path | None = None,
                     progress: bool = True) -> QuantizedWhisper:
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    ckpt = load_whisper(spec)
    samples, cal = None, None
    if recipe.needs_calibration and calib is None:
        raise AsrQuantError(f"recipe {recipe.name!r} calibrates on audio: give --calib MANIFEST")
    if calib is not None:
        samples, cal = calibration_samples(ckpt, calib, recipe.clips or 32, progress)
    report = quantize_model(ckpt.model, recipe, samples, progress=progress)
    return QuantizedWhisper(ckpt, recipe, report, cal)


# ---- saving and loading ---------------------------------------------------------------------

def _packed(qw: QuantizedWeight) -> dict[str, torch.Tensor]:
    t = dict(qw.tensors())
    t["codes"] = pack_int(qw.codes.contiguous(), qw.scheme.bits)
    return {k: v.contiguous() for k, v in t.items()}


def _compact(t: torch.Tensor) -> torch.Tensor:
    """float16 where that is lossless (checkpoints shipped in half precision), else as is."""
    if t.dtype == torch.float32 and torch.equal(t.half().float(), t):
        return t.half().contiguous()
    return t.contiguous()


def save_quantized(qm: QuantizedWhisper, out: str | Path) -> Path:
    if getattr(qm.ckpt, "family", "whisper") == "qwen3-asr":
        from ..qwen3_asr.saved import save_quantized_qwen3_asr

        return save_quantized_qwen3_asr(qm, out)
    ckpt, model = qm.ckpt, qm.ckpt.model
    qweights = quantized_weights(model)
    tensors: dict[str, torch.Tensor] = {}
    for name, value in model.state_dict().items():
        module_name = name.rsplit(".", 1)[0]
        if module_name in qweights and name.endswith((".weight", ".inv_input_scale")):
            continue  # the dequantized cache is derived from the codes
        tensors[name] = _compact(value.detach())
    for name, qw in qweights.items():
        tensors.update({f"{name}.qweight.{k}": v for k, v in _packed(qw).items()})
    # The encoder's positions (a buffer outside the state dict): the formula's rounding when they are
    # the formula, else the table itself; see asrquant.models.whisper.model.SINUSOID_ROUNDINGS.
    positions = sinusoid_rounding(model.encoder.positional_embedding)
    if positions is None:
        tensors[POSITIONS] = _compact(model.encoder.positional_embedding)
    config = {
        "kind": KIND, "family": "whisper", "dims": ckpt.dims.to_dict(), "encoder_positions": positions or "stored",
        "suppress_ids": ckpt.suppress_ids, "suppress_ids_begin": ckpt.suppress_ids_begin, "lang_ids": ckpt.lang_ids,
        "alignment_heads": [list(h) for h in ckpt.alignment_heads],
        "source": ckpt.source, "source_sha256": ckpt.source_sha256,
    }
    report = qm.report.to_dict() if isinstance(qm.report, QuantReport) else qm.report
    quantization = {
        "recipe": qm.recipe.to_dict(),
        "tensors": {name: {**qw.scheme.to_dict(), "shape": list(qw.shape), "module": _module_kind(model, name)}
                    for name, qw in qweights.items()},
        "report": report,
        "calibration": qm.calibration.to_dict() if qm.calibration else None,
    }
    with atomic_dir(out) as tmp:
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt", "kind": KIND})
        (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n")
        (tmp / "quantization.json").write_text(json.dumps(quantization, indent=1) + "\n")
        shutil.copyfile(ckpt.tokenizer_json, tmp / "tokenizer.json")
        write_manifest(tmp, kind=KIND, family="whisper", source=ckpt.source, source_sha256=ckpt.source_sha256,
                       recipe=qm.recipe.name)
    return Path(out)


def _module_kind(model: torch.nn.Module, name: str) -> str:
    return "embedding" if isinstance(model.get_submodule(name), QuantEmbedding) else "linear"


def _saved_positions(path: Path, config: dict, dims: WhisperDims, stored: torch.Tensor | None) -> torch.Tensor:
    # Directories written before the rounding was recorded hold neither: loading them gave the
    # float32 sinusoids and still does, so the figures measured with them reproduce.
    how = config.get("encoder_positions", "float32")
    if how == "stored":
        if stored is None:
            raise ArtifactError(f"{path / 'model.safetensors'}: no {POSITIONS} (config.json says it is stored)")
        return stored.float().contiguous()
    if how not in SINUSOID_ROUNDINGS:
        raise ArtifactError(f"{path / 'config.json'}: encoder_positions is {how!r}, expected 'stored' or one of "
                            f"{', '.join(SINUSOID_ROUNDINGS)}")
    return sinusoids_rounded(dims.n_audio_ctx, dims.n_audio_state, how)


def is_quantized_dir(path: str | Path) -> bool:
    p = Path(path) / "config.json"
    try:
        return p.is_file() and json.loads(p.read_text()).get("kind") == KIND
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def load_quantized(path: str | Path) -> QuantizedWhisper:
    from ..qwen3_asr.saved import load_quantized_qwen3_asr, saved_family

    path = Path(path)
    if saved_family(path) == "qwen3-asr":
        return load_quantized_qwen3_asr(path)
    verify(path)
    config = json.loads((path / "config.json").read_text())
    quantization = json.loads((path / "quantization.json").read_text())
    tensors = load_file(str(path / "model.safetensors"))
    dims = WhisperDims(**config["dims"])
    model = Whisper(dims)
    plain = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items() if ".qweight." not in k}
    positions = _saved_positions(path, config, dims, plain.pop(POSITIONS, None))
    for name, meta in quantization["tensors"].items():
        meta = dict(meta)
        shape = tuple(meta.pop("shape"))
        module = meta.pop("module", "linear")
        scheme = QuantScheme.from_dict(meta)
        parts = {k.rsplit(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{name}.qweight.")}
        if "codes" not in parts:
            raise ArtifactError(f"{path / 'model.safetensors'}: no codes for quantized layer {name}")
        parts["codes"] = unpack_int(parts["codes"], scheme.bits, shape[1])
        qw = QuantizedWeight.from_tensors(parts, scheme)
        parent, _, attr = name.rpartition(".")
        quantized = QuantEmbedding(qw) if module == "embedding" else QuantLinear(qw, plain.pop(f"{name}.bias", None))
        setattr(model.get_submodule(parent), attr, quantized)
    missing, unexpected = model.load_state_dict(plain, strict=False)
    # QuantLinear / QuantEmbedding buffers (weight, bias, inv_input_scale) were set from the codes above.
    missing = [m for m in missing if not m.startswith(tuple(f"{n}." for n in quantization["tensors"]))]
    if missing or unexpected:
        raise ArtifactError(f"{path / 'model.safetensors'}: tensors missing {missing[:3]} / unexpected {unexpected[:3]}")
    model.encoder.positional_embedding = positions
    model.eval().requires_grad_(False)
    weights = path / "model.safetensors"
    ckpt = WhisperCheckpoint(
        model=model, dims=dims, tokenizer_json=path / "tokenizer.json", suppress_ids=config["suppress_ids"],
        suppress_ids_begin=config["suppress_ids_begin"], lang_ids=config["lang_ids"], source=str(path),
        source_sha256=config["source_sha256"], size_bytes=weights.stat().st_size, format=KIND,
        alignment_heads=[tuple(h) for h in config.get("alignment_heads", [])],
    )
    recipe = recipe_from_dict(quantization["recipe"], source=str(path / "quantization.json"))
    cal = quantization.get("calibration")
    return QuantizedWhisper(ckpt, recipe, quantization["report"], Calibration(**cal) if cal else None)



# ---- the command ----------------------------------------------------------------------------

def cmd_quantize(args) -> int:
    import time

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    qm = quantize_checkpoint(args.model, args.recipe, args.calib, progress=not args.quiet)
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
