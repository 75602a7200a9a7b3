"""A safe reader of CTranslate2's ``model.bin`` (the faster-whisper checkpoint format).

No ctranslate2 import and no pickle: the file is parsed field by field, every read is checked
against the file size, and arrays come out as numpy. The layout, as written by
``ctranslate2/specs/model_spec.py`` (``_serialize``) and read by ``src/models/model.cc``, all
integers little-endian:

    u32  binary_version                      (1..6; this reader knows up to 6)
    str  spec_name, u32 spec_revision        (binary_version >= 2)
    u32  n_variables
    n_variables times:
        str  name
        u8   rank, u32 dims[rank]
        v>=4: u8 dtype_id, u32 n_bytes       dtype_id: 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16
        v<4:  u8 item_size, u32 n_items      (item size 4 -> f32, 2 -> i16, 1 -> i8)
        n_bytes raw bytes, C order
    v>=3: u32 n_aliases, then (str alias, str target) pairs
    str = u16 length (including a trailing NUL), then that many bytes

Quantized weights: an int8 ``W`` comes with ``W_scale`` (one float per output row) and an int16
``W`` with a scalar ``W_scale``; CTranslate2 quantizes as ``q = rint(w * scale)``, so the float
weight is ``q / scale``. :meth:`CT2Model.array` returns that dequantized float32 array.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import ModelError

MAX_BINARY_VERSION = 6

# dtype ids of binary version >= 4 (the order of ctranslate2's DataType enum).
_DTYPES: dict[int, str] = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
_ITEM_SIZE = {"float32": 4, "int8": 1, "int16": 2, "int32": 4, "float16": 2, "bfloat16": 2}
# binary version < 4 stored the item size instead of a dtype (model.cc get_dtype_from_item_size).
_LEGACY_DTYPES = {4: "float32", 2: "int16", 1: "int8"}
# ctranslate2's Quantize::global_int16_scale: the scale of old int16 models saved without one.
_LEGACY_INT16_SCALE = 1000.0


@dataclass(frozen=True)
class CT2Variable:
    name: str
    shape: tuple[int, ...]
    dtype: str  # "float32" | "int8" | "int16" | "int32" | "float16" | "bfloat16"
    offset: int  # byte offset of the raw data in the file
    nbytes: int


@dataclass
class CT2Model:
    """The parsed header of a model.bin; arrays are read on demand from the file."""

    path: Path
    binary_version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, CT2Variable] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> variable name

    def resolve(self, name: str) -> str:
        """The variable a name stands for, following aliases (and aliases of ``_scale``)."""
        if name in self.variables:
            return name
        if name in self.aliases:
            return self.aliases[name]
        if name.endswith("_scale") and name[: -len("_scale")] in self.aliases:
            # model.cc registers alias+"_scale" -> target+"_scale" beside every alias.
            return self.aliases[name[: -len("_scale")]] + "_scale"
        return name

    def __contains__(self, name: str) -> bool:
        return self.resolve(name) in self.variables

    def names(self) -> list[str]:
        return list(self.variables)

    def raw(self, name: str) -> np.ndarray:
        """The variable as stored (its own dtype; bfloat16 comes back widened to float32)."""
        var = self._var(name)
        with open(self.path, "rb") as f:
            f.seek(var.offset)
            data = f.read(var.nbytes)
        if len(data) != var.nbytes:  # the file shrank since it was parsed
            raise ModelError(f"{self.path}: truncated while reading variable '{var.name}'")
        return _decode(data, var)

    def array(self, name: str) -> np.ndarray:
        """The variable as float32, int8/int16 weights dequantized with their ``_scale``."""
        var = self._var(name)
        value = self.raw(name)
        if var.dtype in ("int8", "int16") and not name.endswith("_scale"):
            scale_name = self.resolve(name) + "_scale"
            if scale_name in self.variables:
                scale = self.raw(scale_name).astype(np.float32)
            elif var.dtype == "int16":
                scale = np.float32(_LEGACY_INT16_SCALE)
            else:
                raise ModelError(f"{self.path}: int8 variable '{var.name}' has no '{scale_name}'")
            if scale.ndim == 1:  # one scale per output row (conv weights are [out, in, k])
                if scale.shape[0] != value.shape[0]:
                    raise ModelError(
                        f"{self.path}: '{scale_name}' has {scale.shape[0]} scales for "
                        f"{value.shape[0]} rows of '{var.name}'"
                    )
                scale = scale.reshape((-1,) + (1,) * (value.ndim - 1))
            elif scale.ndim != 0:
                raise ModelError(f"{self.path}: '{scale_name}' has unexpected shape {scale.shape}")
            if np.any(scale == 0):
                raise ModelError(f"{self.path}: '{scale_name}' contains a zero scale")
            return (value.astype(np.float32) / scale).astype(np.float32)
        return value.astype(np.float32, copy=False)

    def scalar(self, name: str) -> int | float:
        value = self.raw(name)
        if value.size != 1:
            raise ModelError(f"{self.path}: variable '{name}' is not a scalar (shape {value.shape})")
        return value.reshape(()).item()

    def _var(self, name: str) -> CT2Variable:
        resolved = self.resolve(name)
        if resolved not in self.variables:
            raise ModelError(f"{self.path}: no variable '{name}' in this model ({self.spec_name})")
        return self.variables[resolved]


def _decode(data: bytes, var: CT2Variable) -> np.ndarray:
    if var.dtype == "bfloat16":
        bits = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(var.shape)
    return np.frombuffer(data, dtype=np.dtype(var.dtype).newbyteorder("<")).reshape(var.shape).copy()


class _Cursor:
    """Bounds-checked little-endian reads over a buffer; errors name the file and the field."""

    def __init__(self, buf, path: Path):
        self.buf = buf
        self.size = len(buf)
        self.pos = 0
        self.path = path
        self.what = "the header"

    def need(self, n: int, field_name: str) -> None:
        if self.pos + n > self.size:
            raise ModelError(
                f"{self.path}: truncated at byte {self.pos} while reading {field_name} of {self.what} "
                f"(needs {n} bytes, {self.size - self.pos} left)"
            )

    def unpack(self, fmt: str, field_name: str):
        n = struct.calcsize("<" + fmt)
        self.need(n, field_name)
        value = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += n
        return value

    def u8(self, field_name: str) -> int:
        return self.unpack("B", field_name)[0]

    def u32(self, field_name: str) -> int:
        return self.unpack("I", field_name)[0]

    def string(self, field_name: str) -> str:
        (length,) = self.unpack("H", f"the length of {field_name}")
        if length == 0:
            raise ModelError(
                f"{self.path}: empty string field at byte {self.pos - 2} ({field_name} of {self.what})"
            )
        self.need(length, field_name)
        raw = bytes(self.buf[self.pos : self.pos + length])
        if raw[-1] != 0:
            raise ModelError(
                f"{self.path}: malformed string at byte {self.pos} ({field_name} of {self.what}): "
                "no terminating NUL; not a CTranslate2 model.bin?"
            )
        try:
            text = raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise ModelError(
                f"{self.path}: malformed string at byte {self.pos} ({field_name} of {self.what}): not UTF-8"
            ) from None
        self.pos += length
        return text


def read_ct2(path: str | Path, strict: bool = True) -> CT2Model:
    """Parse a CTranslate2 model.bin (a file, or a directory holding one).

    Reads the header and checks that every variable's bytes lie inside the file; the arrays
    themselves are read later with :meth:`CT2Model.array`. ``strict`` also refuses bytes after
    the last alias (CTranslate2 never writes any; they usually mean a badly joined file).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"{path}: empty file; not a CTranslate2 model.bin")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        return _parse(_Cursor(buf, path), path, strict)


def _parse(cur: _Cursor, path: Path, strict: bool) -> CT2Model:
    version = cur.u32("the binary version")
    if not 1 <= version <= MAX_BINARY_VERSION:
        raise ModelError(
            f"{path}: binary version {version} is not one this reader knows (1..{MAX_BINARY_VERSION}); "
            "not a CTranslate2 model.bin, or one written by a newer CTranslate2"
        )
    spec_name, revision = "", 1
    if version >= 2:
        spec_name = cur.string("the spec name")
        revision = cur.u32("the spec revision")
    model = CT2Model(path=path, binary_version=version, spec_name=spec_name, spec_revision=revision)

    n_vars = cur.u32("the variable count")
    # Each variable takes at least 2 + 1 + 1 + 1 + 4 bytes: a bad count fails here, not in a loop.
    if n_vars * 9 > cur.size - cur.pos:
        raise ModelError(
            f"{path}: header claims {n_vars} variables, more than the file can hold ({cur.size} bytes)"
        )
    for i in range(n_vars):
        cur.what = f"variable #{i}"
        name = cur.string("the variable name")
        cur.what = f"variable '{name}'"
        rank = cur.u8("the rank")
        shape = tuple(cur.unpack(f"{rank}I", "the shape")) if rank else ()
        if version >= 4:
            type_id = cur.u8("the dtype")
            if type_id not in _DTYPES:
                raise ModelError(f"{path}: variable '{name}' has unknown dtype id {type_id} at byte {cur.pos - 1}")
            dtype = _DTYPES[type_id]
            nbytes = cur.u32("the byte count")
        else:
            item_size = cur.u8("the item size")
            if item_size not in _LEGACY_DTYPES:
                raise ModelError(
                    f"{path}: variable '{name}' has unknown item size {item_size} at byte {cur.pos - 1}"
                )
            dtype = _LEGACY_DTYPES[item_size]
            nbytes = cur.u32("the item count") * item_size
        expected = int(np.prod(shape, dtype=np.int64)) * _ITEM_SIZE[dtype]
        if nbytes != expected:
            raise ModelError(
                f"{path}: variable '{name}' declares {nbytes} bytes but shape {list(shape)} of {dtype} "
                f"needs {expected}"
            )
        cur.need(nbytes, "the data")
        if name in model.variables:
            raise ModelError(f"{path}: variable '{name}' appears twice")
        model.variables[name] = CT2Variable(name, shape, dtype, cur.pos, nbytes)
        cur.pos += nbytes

    if version >= 3:
        cur.what = "the alias table"
        n_aliases = cur.u32("the alias count")
        if n_aliases * 6 > cur.size - cur.pos:
            raise ModelError(f"{path}: header claims {n_aliases} aliases, more than the file can hold")
        for i in range(n_aliases):
            cur.what = f"alias #{i}"
            alias = cur.string("the alias name")
            target = cur.string("the alias target")
            if target not in model.variables:
                raise ModelError(f"{path}: alias '{alias}' points to '{target}', which is not a variable")
            model.aliases[alias] = target

    if strict and cur.pos != cur.size:
        raise ModelError(
            f"{path}: {cur.size - cur.pos} unexpected bytes after the end of the model at byte {cur.pos} "
            "(a badly joined or corrupted file?)"
        )
    return model
