"""Atomic artifact directories with a sha256 manifest.

Every directory asrquant writes (a quantized model, an export) is built in a temporary sibling
and renamed into place, so it appears whole or not at all. Its ``manifest.json`` lists every file
with its sha256; readers call :func:`verify` and refuse a directory that does not match.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from . import __version__
from .errors import ArtifactError

MANIFEST = "manifest.json"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_dir(out: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``out`` only if the block completes."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise ArtifactError(f"{out}: already exists")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
    for name, meta in manifest.get("files", {}).items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{path}: listed in {MANIFEST} but missing")
        if path.stat().st_size != meta["bytes"]:
            raise ArtifactError(f"{path}: {path.stat().st_size} bytes, manifest says {meta['bytes']}")
        if check_hashes and sha256_file(path) != meta["sha256"]:
            raise ArtifactError(f"{path}: sha256 does not match {MANIFEST}")
    return manifest
