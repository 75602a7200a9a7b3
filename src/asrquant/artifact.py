"""Atomic artifact directories with a sha256 manifest.

Every directory asrquant writes (a quantized model, an export) is built in a temporary sibling
and renamed into place, so it appears whole or not at all. Its ``manifest.json`` lists every file
with its sha256; readers call :func:`verify` and refuse a directory that does not match.

Every command that takes ``--out`` calls :func:`prepare_out` before any work: the one policy of
what may be replaced (an empty or absent directory; one of ours or anything else only with
``--overwrite``; never a file, the input, or the working directory) and whether it can be written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from . import __version__
from .errors import ArtifactError, OutputError

MANIFEST = "manifest.json"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sort_safetensors_metadata(path: Path) -> None:
    """Rewrite a safetensors file's header with its ``__metadata__`` keys in sorted order, in place.

    The safetensors library writes that map in the order of a Rust HashMap, which is seeded anew
    for every map: two files of the same tensors and metadata then differ in a few header bytes,
    and so do their manifest sha256. Same keys and values, so the same header length: only those
    bytes move, and the tensors (their names, offsets and data) are untouched. Written here because
    the library has no option for it."""
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        raw = f.read(n)
        header = json.loads(raw)
        meta = header.get("__metadata__")
        if not meta or len(meta) < 2:
            return
        header["__metadata__"] = dict(sorted(meta.items()))
        new = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(new) > n:  # never grow the header: the data's offsets are counted from its end
            raise ArtifactError(f"{path}: safetensors header would grow from {n} to {len(new)} bytes")
        f.seek(8)
        f.write(new + b" " * (n - len(new)))  # the format pads its header with spaces


@contextlib.contextmanager
def atomic_dir(out: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``out`` only if the block completes."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise ArtifactError(f"{out}: already exists")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a directory; asrquant writes a directory there")
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out)
    # The pid in the name lets a later run tell a temporary of a killed process from a live one.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, out)


def staging_dir(out: str | Path, what: str) -> Path:
    """A path beside ``out`` to assemble a whole artifact in before :func:`replace_dir`; named as
    :func:`atomic_dir`'s temporaries are, so a killed run's leftover is cleaned by the next write."""
    out = Path(out)
    return out.parent / f".{out.name}.tmp-{os.getpid()}-{what}"


def replace_dir(new: Path, out: Path) -> None:
    """Put the finished directory ``new`` at ``out`` (whatever was there is removed after the rename)."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(new, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


_STALE = re.compile(r"\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)(?:-.*)?$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def clean_stale(out: str | Path) -> list[Path]:
    """Remove the temporaries (``.NAME.tmp-PID-*``, ``.NAME.old-PID``) that an earlier write to
    ``out`` left when its process was killed; those of a process still running are left alone."""
    out = Path(out)
    removed = []
    if not out.parent.is_dir():
        return removed
    for p in out.parent.glob(f".{glob_escape(out.name)}.*-*"):
        m = _STALE.match(p.name)
        if m and m["name"] == out.name and p.is_dir() and not p.is_symlink() and not _alive(int(m["pid"])):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def is_ours(directory: str | Path) -> bool:
    """A directory asrquant wrote: its manifest.json parses and names an asrquant version."""
    try:
        manifest = json.loads((Path(directory) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "asrquant_version" in manifest


def prepare_out(out: str | Path, overwrite: bool = False, inputs=(), adding: bool = False,
                option: str = "--out") -> Path:
    """Refuse ``out`` before any work unless it may be written: absent, an empty directory, or
    (with ``overwrite``) a directory to replace; with ``adding``, one of our artifacts to add to.
    Never a file, an input (or a directory holding one), the working directory or one holding it,
    and never a place that cannot be written. Cleans stale temporaries of earlier runs."""
    if str(out).strip() == "":  # before Path(), which reads "" as "."
        raise OutputError(f"{option}: empty path")
    out = Path(out)
    target = out.resolve()
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a directory; asrquant writes a directory there")
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise OutputError(f"{out}: is the working directory (or holds it); give a new directory")
    for given in inputs:
        if given and Path(given).exists():
            source = Path(given).resolve()
            if target == source or target in source.parents:
                raise OutputError(f"{out}: is the input {given} (or holds it); replacing it would destroy it")
    if out.is_dir() and any(out.iterdir()):
        ours = is_ours(out)
        if adding and not ours:
            raise OutputError(f"{out}: not an asrquant artifact (no asrquant {MANIFEST}); --variant adds to one")
        if not adding and not overwrite:
            what = "an asrquant artifact" if ours else "a non-empty directory that asrquant did not write"
            raise OutputError(f"{out}: already exists ({what}); pass --overwrite to replace it")
    check_writable(out)
    clean_stale(out)
    return out


def check_writable(out: Path) -> None:
    """The nearest existing directory at or above ``out``'s parent takes a new entry (probed by
    making one, which also catches a read-only file system), and an existing ``out`` can be emptied."""
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{out}: {parent} is not a directory")
    try:
        probe = tempfile.mkdtemp(prefix=".asrquant-probe-", dir=parent)
    except OSError as e:
        raise OutputError(f"{out}: cannot write in {parent} ({e.strerror or e})") from None
    os.rmdir(probe)
    if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: not writable (its contents could not be replaced)")


def check_report_path(path: str | Path, option: str) -> Path:
    """A file the command will write at the end (a report): refused now if it cannot be."""
    if str(path).strip() == "":
        raise OutputError(f"{option}: empty path")
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path}: is a directory")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{option} {path}: not writable")
    try:
        check_writable(path)
    except OutputError as e:
        raise OutputError(f"{option} {e}") from None
    return path


def write_manifest(directory: Path, **fields) -> dict:
    """Write manifest.json describing every other file in ``directory`` (recursively)."""
    files = {
        p.relative_to(directory).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {"asrquant_version": __version__, **fields, "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{directory}: no {MANIFEST}; not an asrquant artifact")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path}: not valid JSON ({e})") from None


def read_json(path: str | Path) -> dict:
    """A JSON file of an artifact, or an ArtifactError naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{path}: cannot read ({e})") from None


def verify(directory: str | Path, check_hashes: bool = True) -> dict:
    """Return the manifest if every listed file exists with the listed size and sha256."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    where = directory / MANIFEST
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ArtifactError(f"{where}: no \"files\" table; not a complete asrquant manifest")
    for name, meta in manifest["files"].items():
        if not (isinstance(meta, dict) and isinstance(meta.get("bytes"), int) and isinstance(meta.get("sha256"), str)):
            raise ArtifactError(f"{where}: entry {name!r} needs \"bytes\" and \"sha256\"")
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ArtifactError(f"{where}: entry {name!r} points outside the artifact")
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{path}: listed in {MANIFEST} but missing")
        if path.stat().st_size != meta["bytes"]:
            raise ArtifactError(f"{path}: {path.stat().st_size} bytes, manifest says {meta['bytes']}")
        if check_hashes and sha256_file(path) != meta["sha256"]:
            raise ArtifactError(f"{path}: sha256 does not match {MANIFEST}")
    return manifest
