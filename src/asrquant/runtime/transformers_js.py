"""Opening an ``asrquant export --format transformers.js`` artifact with onnxruntime in Python
(numpy and onnxruntime, no torch): every file checked against the manifest, then the family's
runner over the graphs the browser loads (``asrquant transcribe DIR``, ``asrquant bench``)."""

from __future__ import annotations

from pathlib import Path

from .. import families
from ..artifact import verify
from ..errors import ArtifactError
from ..transcript import OursEngine


def open_transformers_js_engine(spec: str, directory: str | Path, threads: int = 2) -> OursEngine:
    directory = Path(directory)
    manifest = verify(directory)
    family = families.FAMILIES.get(manifest.get("family"))
    if family is None or not family.has("transformers_js_session"):
        raise ArtifactError(f"{directory / 'manifest.json'}: family {manifest.get('family')!r}; the transformers.js "
                            "runner reads Whisper exports")
    graphs = manifest.get("graphs") or {}
    if set(graphs) != {"encoder_model", "decoder_model_merged"}:
        raise ArtifactError(f"{directory / 'manifest.json'}: graphs {sorted(graphs)}, expected encoder_model and "
                            "decoder_model_merged")
    transcriber = family.module("transformers_js_session").open_transformers_js(directory, graphs, threads)
    size = sum(manifest["files"][f]["bytes"] for f in graphs.values())
    return OursEngine(spec, transcriber, size, "asrquant-onnx-transformers.js")
