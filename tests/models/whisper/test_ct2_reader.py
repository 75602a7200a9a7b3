"""The CTranslate2 model.bin reader: the real tiny.en file, files we write, broken files."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from asrquant.errors import ModelError
from asrquant.models.whisper.ct2_reader import read_ct2

from .conftest import has_package, needs_tiny, needs_transformers

DTYPE_IDS = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4, "bfloat16": 5}


def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2(path, variables: dict, aliases: dict | None = None, version: int = 6, spec="TestSpec") -> None:
    """A model.bin as ctranslate2's model_spec._serialize writes it (dtype name, array) per variable."""
    out = struct.pack("<I", version)
    if version >= 2:
        out += _string(spec) + struct.pack("<I", 1)
    out += struct.pack("<I", len(variables))
    for name, (dtype, array) in variables.items():
        array = np.asarray(array)
        if dtype == "bfloat16":
            raw = (np.asarray(array, np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        else:
            raw = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
        out += _string(name) + struct.pack("<B", array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape)
        if version >= 4:
            out += struct.pack("<BI", DTYPE_IDS[dtype], len(raw))
        else:  # legacy: item size and item count
            item = np.dtype(dtype).itemsize
            out += struct.pack("<BI", item, len(raw) // item)
        out += raw
    if version >= 3:
        aliases = aliases or {}
        out += struct.pack("<I", len(aliases))
        for alias, target in aliases.items():
            out += _string(alias) + _string(target)
    path.write_bytes(out)


def ct2_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ctranslate2's int8 quantization (model_spec.py): per-row scale = 127 / amax, q = rint(w * scale)."""
    amax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    scale = (127.0 / amax).astype(np.float32)
    q = np.rint(w * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.int8)
    return q, scale


@needs_tiny
def test_real_tiny_en_header_and_arrays(tiny_en):
    from asrquant.models.whisper.hub import resolve

    m = read_ct2(resolve("whisper-tiny.en") / "model.bin")
    assert (m.binary_version, m.spec_name, m.spec_revision) == (6, "WhisperSpec", 3)
    assert len(m.variables) == 148
    assert m.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    emb = m.variables["decoder/embeddings/weight"]
    assert (emb.shape, emb.dtype) == ((51864, 384), "float16")
    assert m.scalar("encoder/num_heads") == 6 and m.scalar("decoder/num_heads") == 6
    proj = m.array("decoder/projection/weight")  # through the alias
    assert proj.dtype == np.float32 and proj.shape == (51864, 384)
    assert np.array_equal(proj, m.raw("decoder/embeddings/weight").astype(np.float32))
    # The loader's copy of the same weights is exactly the float16 values widened.
    assert np.array_equal(tiny_en.model.decoder.token_embedding.weight.numpy(), proj)


def test_every_dtype_and_dequantization(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 5)).astype(np.float32)
    conv = rng.standard_normal((4, 3, 3)).astype(np.float32)
    q, scale = ct2_int8(w)
    qc, scale_c = ct2_int8(conv)
    q16 = np.rint(w * (2**10 / np.abs(w).max())).astype(np.int16)
    path = tmp_path / "model.bin"
    write_ct2(
        path,
        {
            "a/weight": ("int8", q),
            "a/weight_scale": ("float32", scale),
            "c/weight": ("int8", qc),
            "c/weight_scale": ("float32", scale_c),
            "b/weight": ("int16", q16),
            "b/weight_scale": ("float32", np.float32(2**10 / np.abs(w).max())),
            "f16": ("float16", w.astype(np.float16)),
            "bf16": ("bfloat16", w),
            "i32": ("int32", np.arange(7, dtype=np.int32)),
            "flag": ("int8", np.int8(3)),
        },
        aliases={"alias/weight": "a/weight"},
    )
    m = read_ct2(path)
    assert m.variables["a/weight"].dtype == "int8"
    np.testing.assert_allclose(m.array("a/weight"), w, atol=np.abs(w).max() / 127 / 2 + 1e-7)
    np.testing.assert_array_equal(m.array("a/weight"), q.astype(np.float32) / scale[:, None])
    np.testing.assert_array_equal(m.array("alias/weight"), m.array("a/weight"))  # alias + its _scale
    np.testing.assert_allclose(m.array("c/weight"), conv, atol=np.abs(conv).max() / 127 / 2 + 1e-7)
    np.testing.assert_allclose(m.array("b/weight"), w, atol=np.abs(w).max() / 2**10 / 2 + 1e-7)
    np.testing.assert_array_equal(m.array("f16"), w.astype(np.float16).astype(np.float32))
    bf = (w.view(np.uint32) & 0xFFFF0000).view(np.float32)  # truncation, as written above
    np.testing.assert_array_equal(m.array("bf16"), bf)
    np.testing.assert_array_equal(m.raw("i32"), np.arange(7))
    assert m.scalar("flag") == 3


@pytest.mark.parametrize("version", [1, 2, 3])
def test_legacy_binary_versions(tmp_path, version):
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "model.bin"
    write_ct2(path, {"x/weight": ("float32", w), "y": ("int16", np.int16(7))}, version=version)
    m = read_ct2(path)
    assert m.binary_version == version and m.spec_name == ("" if version == 1 else "TestSpec")
    np.testing.assert_array_equal(m.array("x/weight"), w)
    assert m.raw("y").item() == 7


@needs_tiny
def test_truncated_real_file_names_file_and_variable(tmp_path):
    from asrquant.models.whisper.hub import resolve

    src = (resolve("whisper-tiny.en") / "model.bin").read_bytes()
    for cut, expect in [
        (2, "the binary version"),
        (20, "the spec"),
        (len(src) // 2, "while reading the data of variable '"),
        (len(src) - 10, "alias"),
    ]:
        path = tmp_path / f"cut{cut}" / "model.bin"
        path.parent.mkdir()
        path.write_bytes(src[:cut])
        with pytest.raises(ModelError) as e:
            read_ct2(path)
        msg = str(e.value)
        assert str(path) in msg and "truncated at byte" in msg and expect in msg, msg
    # The example of the brief: a cut inside a decoder weight names that variable and the size.
    m = read_ct2(resolve("whisper-tiny.en") / "model.bin")
    var = m.variables["decoder/layer_0/ffn/linear_0/weight"]
    path = tmp_path / "model.bin"
    path.write_bytes(src[: var.offset + 100])
    with pytest.raises(ModelError, match=rf"truncated at byte {var.offset} while reading the data of "
                       rf"variable 'decoder/layer_0/ffn/linear_0/weight' \(needs {var.nbytes} bytes, 100 left\)"):
        read_ct2(path)


def test_garbage_and_empty_files(tmp_path):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelError, match="garbage.bin"):
        read_ct2(garbage)
    text = tmp_path / "text.bin"
    text.write_bytes(b"\x06\x00\x00\x00" + b"not a model at all, just words" * 10)
    with pytest.raises(ModelError, match="text.bin"):
        read_ct2(text)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match="empty.bin: empty file"):
        read_ct2(empty)
    with pytest.raises(ModelError, match="no such file"):
        read_ct2(tmp_path / "missing" / "model.bin")


def test_malformed_headers(tmp_path):
    path = tmp_path / "model.bin"
    write_ct2(path, {"x": ("float32", np.zeros(4, np.float32))})
    good = path.read_bytes()
    # A byte count that disagrees with the shape.
    bad = bytearray(good)
    offset = good.index(b"x\0") + 2 + 1 + 4 + 1  # name, rank, dim, dtype -> byte count
    struct.pack_into("<I", bad, offset, 12)
    path.write_bytes(bytes(bad))
    with pytest.raises(ModelError, match="declares 12 bytes but shape \\[4\\] of float32 needs 16"):
        read_ct2(path)
    # An unknown dtype id.
    bad = bytearray(good)
    bad[offset - 1] = 9
    path.write_bytes(bytes(bad))
    with pytest.raises(ModelError, match="unknown dtype id 9"):
        read_ct2(path)
    # A version from the future.
    path.write_bytes(struct.pack("<I", 99) + good[4:])
    with pytest.raises(ModelError, match="binary version 99"):
        read_ct2(path)
    # Bytes after the alias table (a badly joined file), refused unless strict=False.
    path.write_bytes(good + b"\0" * 8)
    with pytest.raises(ModelError, match="8 unexpected bytes after the end"):
        read_ct2(path)
    assert "x" in read_ct2(path, strict=False)
    # A huge variable count cannot make the reader loop or allocate.
    path.write_bytes(good[: good.index(b"TestSpec") + 9 + 4] + struct.pack("<I", 2**31))
    with pytest.raises(ModelError, match="more than the file can hold"):
        read_ct2(path)


@pytest.mark.slow
@needs_tiny
@needs_transformers
@pytest.mark.skipif(not has_package("ctranslate2"), reason="ctranslate2 not installed (peer)")
def test_reads_what_ctranslate2_writes_int8(tiny_en, tmp_path):
    """ctranslate2's own converter writes an int8_float16 model.bin; we read it back."""
    from ctranslate2.converters import TransformersConverter

    from asrquant.models.whisper.load import load_whisper, write_hf_checkpoint

    hf_dir = write_hf_checkpoint(tiny_en, tmp_path / "hf")
    out = tmp_path / "ct2-int8"
    TransformersConverter(str(hf_dir)).convert(str(out), quantization="int8_float16")
    m = read_ct2(out / "model.bin")
    assert m.variables["encoder/layer_0/ffn/linear_0/weight"].dtype == "int8"
    assert m.variables["encoder/layer_0/ffn/linear_0/bias"].dtype == "float16"
    ckpt = load_whisper(out)
    for name, ref in tiny_en.model.state_dict().items():
        got = ckpt.model.state_dict()[name]
        # int8 per row: error <= half a step of amax/127 (+ float16 rounding of the small rest)
        tol = 1e-3
        if ref.ndim > 1:
            tol = tol + ref.abs().amax(dim=tuple(range(1, ref.ndim)), keepdim=True) / 127 / 2
        assert ((got - ref).abs() <= tol).all(), name
