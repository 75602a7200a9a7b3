"""asrquant web: what it serves (the page, the npm packages, the artifact) with the headers that
give the page threads, what it refuses, and the exact command when the npm packages are missing."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from asrquant.cli import main
from asrquant.web.server import DIST, make_server, serve_in_thread


def fake_artifact(tmp_path: Path) -> Path:
    from asrquant.artifact import write_manifest

    art = tmp_path / "art"
    (art / "onnx").mkdir(parents=True)
    (art / "onnx" / "encoder_model_q4.onnx").write_bytes(b"enc")
    (art / "onnx" / "decoder_model_merged_q4.onnx").write_bytes(b"dec")
    (art / "generation_config.json").write_text('{"is_multilingual": false}')
    write_manifest(art, kind="asrquant-export-transformers.js", family="whisper", dtype="q4",
                   graphs={"encoder_model": "onnx/encoder_model_q4.onnx",
                           "decoder_model_merged": "onnx/decoder_model_merged_q4.onnx"})
    return art


def fake_node_modules(tmp_path: Path) -> Path:
    nm = tmp_path / "web" / "node_modules"
    (nm / DIST).mkdir(parents=True, exist_ok=True)
    (nm / DIST / "transformers.js").write_text("export const env = {};\n")
    return nm


def test_serves_page_packages_and_artifact(tmp_path):
    server = make_server(fake_artifact(tmp_path), fake_node_modules(tmp_path), port=0)
    serve_in_thread(server)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(base + "/") as r:
            assert b"asrquant" in r.read()
            assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        with urllib.request.urlopen(base + "/vendor/transformers/transformers.js") as r:
            assert b"env" in r.read()
        with urllib.request.urlopen(base + "/models/model/onnx/encoder_model_q4.onnx") as r:
            assert r.read() == b"enc"
        with urllib.request.urlopen(base + "/artifact.json") as r:
            info = json.loads(r.read())
        assert info["dtype"] == "q4" and info["model_bytes"] == 6
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(base + "/models/model/../../web/node_modules/x")
    finally:
        server.shutdown()
        server.server_close()


def test_missing_npm_packages_name_the_command(tmp_path, capsys):
    art = fake_artifact(tmp_path)
    assert main(["web", str(art), "--node-modules", str(tmp_path / "web" / "node_modules")]) == 2
    err = capsys.readouterr().err
    assert f"npm ci --prefix {tmp_path / 'web'}" in err and err.count("\n") == 1


def test_refuses_other_artifacts(tmp_path, capsys):
    from asrquant.artifact import write_manifest

    other = tmp_path / "onnx-art"
    other.mkdir()
    write_manifest(other, kind="onnx", family="whisper")
    assert main(["web", str(other), "--node-modules", str(fake_node_modules(tmp_path))]) == 2
    assert "transformers.js" in capsys.readouterr().err
    assert main(["web", str(tmp_path / "nothing"), "--node-modules", str(fake_node_modules(tmp_path))]) == 2
