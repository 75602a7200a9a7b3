"""Evaluation manifests: JSONL with id, audio (relative to the manifest), text, lang,
optional category and duration_s — the format of shared/data/*/manifest.jsonl."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import AsrQuantError


@dataclass(frozen=True)
class Clip:
    id: str
    audio: Path
    text: str
    lang: str | None
    category: str
    duration_s: float | None
    manifest: Path


def read_manifest(path: str | Path) -> list[Clip]:
    """Every line of a manifest. A malformed line is fatal (naming file:line); a missing audio
    file is not: the clip is kept and fails at decode time, reported per clip."""
    path = Path(path)
    if not path.is_file():
        raise AsrQuantError(f"{path}: manifest not found")
    clips = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise AsrQuantError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise AsrQuantError(f"{path}: cannot read ({e.strerror or e})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise AsrQuantError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        clips.append(_clip(row, path, f"{path}:{n}"))
    if not clips:
        raise AsrQuantError(f"{path}: no clips")
    ids = [c.id for c in clips]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise AsrQuantError(f"{path}: clip id {dup!r} appears more than once")
    return clips


def _clip(row, path: Path, where: str) -> Clip:
    """One manifest row, each field checked by name: a wrong type would otherwise surface later
    as a confusing error. (An empty text is a valid calibration row; the bench refuses it.)"""
    if not isinstance(row, dict):
        raise AsrQuantError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for key in ("id", "audio", "text"):
        if key not in row:
            raise AsrQuantError(f"{where}: missing field {key!r}")
    if not isinstance(row["id"], (str, int)) or isinstance(row["id"], bool) or str(row["id"]).strip() == "":
        raise AsrQuantError(f"{where}: field 'id' must be a non-empty string, not {row['id']!r}")
    if not isinstance(row["audio"], str) or not row["audio"].strip():
        raise AsrQuantError(f"{where}: field 'audio' must be a non-empty path string, not {row['audio']!r}")
    if not isinstance(row["text"], str):
        raise AsrQuantError(f"{where}: field 'text' must be a string, not {row['text']!r}")
    lang = row.get("lang")
    if lang is not None and (not isinstance(lang, str) or not lang.strip()):
        raise AsrQuantError(f"{where}: field 'lang' must be a language code or absent, not {lang!r}")
    category = row.get("category")
    if category is not None and not isinstance(category, str):
        raise AsrQuantError(f"{where}: field 'category' must be a string, not {category!r}")
    duration = row.get("duration_s")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float))
                                 or not duration >= 0):
        raise AsrQuantError(f"{where}: field 'duration_s' must be a number >= 0, not {duration!r}")
    return Clip(id=str(row["id"]), audio=path.parent / row["audio"], text=row["text"], lang=lang,
                category=category or path.parent.name, duration_s=duration, manifest=path)


def read_manifests(paths) -> list[Clip]:
    clips = [c for p in paths for c in read_manifest(p)]
    seen = set()
    for c in clips:
        if c.id in seen:
            raise AsrQuantError(f"{c.manifest}: clip id {c.id!r} also appears in another manifest")
        seen.add(c.id)
    return clips
