"""ggml export (whisper.cpp): the blocks hold our codes and float16 scales, and a reader written
from ggml's block definitions gives back our dequantized weights bit for bit; ggml's own C code
(the library pywhispercpp ships) agrees with our reader and with our copy of its round to
nearest, byte for byte; refusals say why; whisper.cpp loads the float16 file of tiny.en and
transcribes vitw8 as our torch fp32 model does."""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from format_fixtures import (
    VITW8,
    needs_tiny,
    needs_vitw8,
    one_torch_thread,  # noqa: F401  (autouse)
    quantized_tiny,
    set_input_scale,
)

from asrquant.errors import AsrQuantError
from asrquant.export.command import export_format
from asrquant.export.ggml import BLOCK_TYPES, TYPES, _ours_to_blocks, block_type_of, rtn_rows
from asrquant.export.readers import ggml_dequantize, parse_ggml, read_ggml
from asrquant.quant.calibrate import quantized_weights
from asrquant.quant.qtensor import QuantizedWeight, dequantize
from asrquant.quant.scheme import QuantScheme

needs_pywhispercpp = pytest.mark.skipif(importlib.util.find_spec("pywhispercpp") is None,
                                        reason="pip install pywhispercpp")

Q4_SYM_RTN = """
[[rules]]
bits = 4
group_size = 32
symmetric = true
scale_dtype = "float16"
algorithm = "rtn"

[embedding]
match = "decoder.token_embedding"
bits = 4
group_size = 32
symmetric = true
scale_dtype = "float16"
algorithm = "rtn"
"""


def random_qweight(bits: int, symmetric: bool, rows: int = 8, cols: int = 96, seed: int = 0,
                   exact_offsets: bool = True) -> QuantizedWeight:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2**bits, (rows, cols), generator=g, dtype=torch.uint8)
    # float16 scales; with exact offsets, a scale of few significant bits so that z * s is a float16
    mant = torch.randint(1, 8 if exact_offsets else 2048, (rows, cols // 32), generator=g).float()
    scales = (mant * 2.0 ** -14 if exact_offsets else (1 + mant / 2048) * 1e-3).half().float()
    zeros = None if symmetric else torch.randint(0, 2**bits, (rows, cols // 32), generator=g, dtype=torch.uint8)
    scheme = QuantScheme.int(bits, 32, symmetric, "float16")
    return QuantizedWeight(codes, scales, zeros, scheme, (rows, cols))


def bits_of(t: torch.Tensor) -> np.ndarray:
    return t.float().numpy().view(np.uint32)


@pytest.mark.parametrize("bits,symmetric", [(4, True), (5, True), (8, True), (4, False), (5, False)])
def test_blocks_give_back_our_weights_bit_for_bit(bits, symmetric):
    qw = random_qweight(bits, symmetric)
    t = block_type_of("w", qw)
    assert t.name == f"q{bits}_{0 if symmetric else 1}"
    raw = _ours_to_blocks("w", t, qw).tobytes()
    assert len(raw) == qw.shape[0] * qw.shape[1] // 32 * t.dtype.itemsize
    back = ggml_dequantize(t.name, raw, *qw.shape)
    assert np.array_equal(back.view(np.uint32), bits_of(dequantize(qw)))


def test_refusals_say_why():
    qw = random_qweight(4, False, exact_offsets=False)
    with pytest.raises(AsrQuantError, match="offset -zero_point \\* scale that is not a float16 number"):
        _ours_to_blocks("w", TYPES["q4_1"], qw)
    for scheme, why in [(QuantScheme.int(4, 64, True, "float16"), "32 weights of a row with a float16 scale"),
                        (QuantScheme.int(4, 32, True), "32 weights of a row with a float16 scale"),
                        (QuantScheme.int(8, 32, False, "float16"), "8 bits symmetric"),
                        (QuantScheme.int(3, 32, True, "float16"), "4 or 5 bits"),
                        (QuantScheme.mxfp4(), "no ggml block type")]:
        shaped = QuantizedWeight(torch.zeros(4, 64, dtype=torch.uint8),
                                 torch.ones(4, scheme.n_groups(64), dtype=torch.float32 if scheme.format == "int"
                                            else torch.uint8),
                                 None if scheme.symmetric else torch.zeros(4, scheme.n_groups(64), dtype=torch.uint8),
                                 scheme, (4, 64))
        with pytest.raises(AsrQuantError, match=why):
            block_type_of("w", shaped)


# --- ggml's own C code, from the library pywhispercpp ships ---------------------------------------


@pytest.fixture(scope="module")
def libggml():
    spec = importlib.util.find_spec("pywhispercpp")
    if spec is None:
        pytest.skip("pip install pywhispercpp")
    found = glob.glob(str(Path(spec.origin).parents[1] / "pywhispercpp.libs" / "libggml-base*.so*"))
    found += glob.glob(str(Path(spec.origin).parents[1] / "libggml-base*.so*"))
    if not found:
        pytest.skip("no libggml-base shipped with pywhispercpp")
    lib = ctypes.CDLL(found[0])
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    return lib


@pytest.mark.parametrize("name", BLOCK_TYPES)
def test_round_to_nearest_and_reader_match_ggml_byte_for_byte(libggml, name):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((16, 256)) * 0.05).astype(np.float32)
    x[3, :32] = 0  # an all-zero block
    x[5, 7], x[5, 9] = -0.3, 0.3  # equal magnitudes: the first sets the sign of a symmetric scale
    x[6, 40:72] = np.linspace(-1, 1, 32, dtype=np.float32)  # codes exactly half-way
    t = TYPES[name]
    ours = rtn_rows(t, x).tobytes()
    dst = np.zeros(len(ours) + 64, np.uint8)
    n = libggml.ggml_quantize_chunk(t.type_id, x.ctypes.data, dst.ctypes.data, 0, x.shape[0], x.shape[1], None)
    assert n == len(ours) and dst[:n].tobytes() == ours
    dequantize_row = getattr(libggml, f"dequantize_row_{name}")
    dequantize_row.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    theirs = np.zeros(x.size, np.float32)
    dequantize_row(dst.ctypes.data, theirs.ctypes.data, x.size)
    assert np.array_equal(ggml_dequantize(name, ours, *x.shape).view(np.uint32).ravel(), theirs.view(np.uint32))


# --- whisper-tiny.en ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_q4(tmp_path_factory):
    if needs_tiny.args[0]:
        pytest.skip(needs_tiny.kwargs["reason"])
    ckpt, r = quantized_tiny(Q4_SYM_RTN)
    return ckpt, export_format("ggml", ckpt, tmp_path_factory.mktemp("ggml") / "tiny-q4", r)


@needs_tiny
def test_file_gives_back_every_quantized_weight_bit_for_bit(tiny_q4):
    ckpt, out = tiny_q4
    from asrquant.models.whisper.export_names import ggml_module

    back = read_ggml(out)
    q = quantized_weights(ckpt.model)
    assert "decoder.token_embedding" in q  # the table in the file's type, as whisper.cpp holds it
    assert set(back.weights) == {ggml_module(n) for n in q}
    for n, qw in q.items():
        assert np.array_equal(back.weights[ggml_module(n)].numpy().view(np.uint32), bits_of(dequantize(qw))), n
    d = ckpt.dims
    assert back.config["hparams"] == [d.n_vocab, d.n_audio_ctx, d.n_audio_state, d.n_audio_head, d.n_audio_layer,
                                      d.n_text_ctx, d.n_text_state, d.n_text_head, d.n_text_layer, d.n_mels]
    assert back.config["ftype"] == 2002 and back.config["n_vocab_file"] == 50256
    sd = ckpt.model.state_dict()
    assert torch.equal(back.tensors["encoder.conv1.bias"], sd["encoder.conv1.bias"].reshape(-1, 1))
    assert back.tensors["encoder.conv2.weight"].dtype == torch.float16
    assert torch.equal(back.tensors["encoder.positional_embedding"], ckpt.model.encoder.positional_embedding)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["ggml_type"] == "q4_0" and manifest["rounding"] == "recipe"
    assert set(manifest["files"]) == {"ggml-model.bin"}


@needs_tiny
def test_float16_file_header_vocab_and_filters(tmp_path):
    from asrquant.features import mel_filters
    from asrquant.models.whisper.load import load_whisper
    from asrquant.models.whisper.tokenizer import WhisperTokenizer

    ckpt = load_whisper("whisper-tiny.en")
    out = export_format("ggml", ckpt, tmp_path / "f16")
    f = parse_ggml(out / "ggml-model.bin")
    assert f.ftype == 1 and f.types["encoder.blocks.0.mlp.0.weight"] == "f16"
    assert f.types["decoder.token_embedding.weight"] == "f16" and f.types["decoder.ln.bias"] == "f32"
    assert torch.equal(f.tensors["decoder.blocks.1.cross_attn.key.weight"],
                       ckpt.model.decoder.blocks[1].cross_attn.key.weight.half())
    assert np.array_equal(f.mel_filters, mel_filters(80).astype(np.float32))
    assert f.vocab[0] == b"!" and f.vocab[220] == b" " and len(f.vocab) == 50256
    tok = WhisperTokenizer(ckpt.tokenizer_json, multilingual=False)
    ids = tok.encode(" I forgot my charger at home, naïve café.")
    assert b"".join(f.vocab[i] for i in ids).decode("utf-8") == " I forgot my charger at home, naïve café."


@needs_tiny
def test_float32_file_gives_back_every_tensor_bit_for_bit(tmp_path):
    """--ggml-type f32: file type 0, every tensor float32 (the convolution kernels too: whisper.cpp's
    loader wants its conv type, float32 in such a file), each equal to the model's bit for bit."""
    from asrquant.models.whisper.export_names import ggml_tensors
    from asrquant.models.whisper.load import load_whisper

    ckpt = load_whisper("whisper-tiny.en")
    out = export_format("ggml", ckpt, tmp_path / "f32", ggml_type="f32")
    f = parse_ggml(out / "ggml-model.bin")
    assert f.ftype == 0 and set(f.types.values()) == {"f32"}
    expect = ggml_tensors(ckpt.model)
    assert list(f.tensors) == list(expect)
    for name, (tensor, _) in expect.items():
        got, want = f.tensors[name].numpy(), tensor.detach().float().numpy()
        assert got.shape == want.shape and np.array_equal(got.view(np.uint32), want.view(np.uint32)), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["ggml_type"] == "f32" and manifest["rounding"] == "float32"
    # twice the float16 file, less the float32 tensors both hold
    f16 = export_format("ggml", ckpt, tmp_path / "f16", ggml_type="f16")
    assert parse_ggml(f16 / "ggml-model.bin").ftype == 1
    assert 1.9 < (out / "ggml-model.bin").stat().st_size / (f16 / "ggml-model.bin").stat().st_size < 2.0


@needs_tiny
def test_reference_rounding_and_refusals(tmp_path):
    from asrquant.models.whisper.load import load_whisper

    ckpt = load_whisper("whisper-tiny.en")
    out = export_format("ggml", ckpt, tmp_path / "q5", ggml_type="q5_0")
    back = read_ggml(out)
    w = ckpt.model.encoder.blocks[0].attn.query.weight.detach().half().float().numpy()
    expect = ggml_dequantize("q5_0", rtn_rows(TYPES["q5_0"], w).tobytes(), *w.shape)
    assert np.array_equal(back.weights["encoder.blocks.0.attn.query.weight"].numpy(), expect)
    assert json.loads((out / "manifest.json").read_text())["rounding"] == "ggml-rtn"

    no_table, r = quantized_tiny(Q4_SYM_RTN.split("[embedding]")[0])
    with pytest.raises(AsrQuantError, match="1 are float \\(decoder.token_embedding.weight\\)"):
        export_format("ggml", no_table, tmp_path / "x", r)
    with pytest.raises(AsrQuantError, match="already quantized"):
        export_format("ggml", no_table, tmp_path / "x", r, ggml_type="q4_0")
    set_input_scale(no_table.model, "encoder.blocks.0.attn.out")
    with pytest.raises(AsrQuantError, match="AWQ input scale"):
        export_format("ggml", no_table, tmp_path / "x", r)
    assert not (tmp_path / "x").exists()


# --- through whisper.cpp -------------------------------------------------------------------------------


@needs_tiny
@needs_vitw8
@needs_pywhispercpp
def test_whisper_cpp_transcribes_our_float16_file_as_our_fp32_model(tmp_path):
    from asrquant.audio import load_audio
    from asrquant.engines import open_engine
    from asrquant.models.whisper.load import load_whisper

    out = export_format("ggml", load_whisper("whisper-tiny.en"), tmp_path / "f16")
    cpp = open_engine(f"whisper.cpp:{out}", threads=2)
    ours = open_engine("whisper-tiny.en", threads=2)
    clips = [json.loads(line) for line in VITW8.read_text().splitlines() if line.strip()]
    same = 0
    for c in clips:
        audio = load_audio(VITW8.parent / c["audio"])
        a, b = cpp.transcribe(audio, "en", 1, 224), ours.transcribe(audio, "en", 1, 224)
        assert a.stops == ["eot"] and a.text
        same += a.tokens == b.tokens
    assert same >= 7, f"{same} of {len(clips)} clips token for token"


@needs_tiny
@needs_vitw8
@needs_pywhispercpp
def test_without_flash_attention_whisper_cpp_gives_our_fp32_tokens_on_every_clip(tmp_path):
    """whisper.cpp's flash attention (its default) sums attention values in float16 on a CPU; without
    it our float16 file decodes as our torch fp32 model on all 8 clips (benchmarks/whisper-cpp/README.md)."""
    from asrquant.audio import load_audio
    from asrquant.engines import open_engine
    from asrquant.models.whisper.load import load_whisper

    out = export_format("ggml", load_whisper("whisper-tiny.en"), tmp_path / "f16")
    cpp = open_engine(f"whisper.cpp:{out}:noflash", threads=2)
    ours = open_engine("whisper-tiny.en", threads=2)
    for c in (json.loads(line) for line in VITW8.read_text().splitlines() if line.strip()):
        audio = load_audio(VITW8.parent / c["audio"])
        t = cpp.transcribe(audio, "en", 1, 224)
        assert t.tokens == ours.transcribe(audio, "en", 1, 224).tokens, c["id"]
        assert cpp._text_of(t.tokens).strip() == t.text  # the text a loop's cut transcript would take


def test_a_family_without_a_ggml_layout_is_refused(tmp_path):
    from types import SimpleNamespace

    from asrquant.export.ggml import write_ggml

    with pytest.raises(AsrQuantError, match="the qwen3-asr family has no whisper.cpp model file"):
        write_ggml(torch.nn.Linear(2, 2), SimpleNamespace(ggml=None, family="qwen3-asr"), {}, tmp_path / "x")
    assert not (tmp_path / "x").exists()
