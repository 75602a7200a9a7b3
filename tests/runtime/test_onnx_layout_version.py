"""An artifact of another graph layout is refused by name, before onnxruntime sees it."""

import json
import shutil

import pytest

from asrquant.artifact import write_manifest
from asrquant.errors import ArtifactError
from asrquant.models.whisper.onnx_session import open_onnx_artifact


def test_other_layout_is_refused(small_artifact, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(small_artifact, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    fields = {k: v for k, v in manifest.items() if k not in ("files", "asrquant_version")}
    fields["layout"] = 0
    write_manifest(copy, **fields)
    with pytest.raises(ArtifactError, match="layout 0"):
        open_onnx_artifact(copy)
