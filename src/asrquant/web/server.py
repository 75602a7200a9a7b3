"""The localhost server of ``asrquant web``: the page, the npm packages it runs, the artifact.

    /                      static/index.html      /app.js   static/app.js
    /vendor/transformers/  @huggingface/transformers' dist/ (its bundled onnxruntime-web .mjs + .wasm)
    /models/model/         the artifact directory (transformers.js asks for config.json, onnx/...)
    /artifact.json         what the page shows: the dtype, the graphs, their bytes

Every response carries COOP/COEP headers, so the page is cross-origin isolated and onnxruntime-web
may run its WebAssembly on several threads (SharedArrayBuffer). Torch-free: the standard library.
"""

from __future__ import annotations

import json
import mimetypes
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from ..artifact import verify
from ..errors import ArtifactError, AsrQuantError
from ..families import TRANSFORMERS_JS_KIND

REPO_WEB = Path(__file__).resolve().parents[3] / "web"  # the checkout's web/ (package.json, package-lock.json)
DIST = Path("@huggingface") / "transformers" / "dist"
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/wasm", ".wasm")


def node_modules_problem(node_modules: Path) -> str | None:
    """Why the page's JavaScript cannot be served from ``node_modules``, with the command that fixes it."""
    if (node_modules / DIST / "transformers.js").is_file():
        return None
    web = node_modules.parent
    return (f"{node_modules / DIST}: transformers.js is not installed; install it (from npm, pinned by "
            f"{web / 'package-lock.json'}) with: npm ci --prefix {web}")


def artifact_info(artifact: Path) -> dict:
    manifest = verify(artifact)
    if manifest.get("kind") != TRANSFORMERS_JS_KIND:
        raise ArtifactError(f"{artifact / 'manifest.json'}: kind {manifest.get('kind')!r}; asrquant web serves a "
                            "--format transformers.js export (asrquant export MODEL --target browser ...)")
    graphs = manifest["graphs"]
    return {"name": artifact.name, "dtype": manifest["dtype"], "graphs": graphs,
            "model_bytes": sum(manifest["files"][f]["bytes"] for f in graphs.values()),
            "source": manifest.get("source"), "multilingual": _multilingual(artifact)}


def _multilingual(artifact: Path) -> bool:
    return bool(json.loads((artifact / "generation_config.json").read_text()).get("is_multilingual"))


class Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, routes: dict[str, Path], info: bytes, **kwargs):
        self.routes, self.info = routes, info
        super().__init__(*args, directory=str(routes["/"]), **kwargs)

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")  # every load measures its download
        super().end_headers()

    def do_GET(self):
        if self.path.split("?")[0] == "/artifact.json":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(self.info)))
            self.end_headers()
            self.wfile.write(self.info)
            return
        super().do_GET()

    def translate_path(self, path: str) -> str:
        clean = path.split("?")[0].split("#")[0]
        for prefix, root in self.routes.items():
            if prefix != "/" and clean.startswith(prefix):
                rel = clean[len(prefix):]
                target = (root / rel).resolve()
                # nothing outside the served folders, whatever the path says
                return str(target) if target.is_relative_to(root.resolve()) else str(root / "__missing__")
        return super().translate_path(path)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def make_server(artifact: str | Path, node_modules: Path, port: int = 0, host: str = "127.0.0.1"
                ) -> ThreadingHTTPServer:
    artifact = Path(artifact)
    if not artifact.is_dir():
        raise AsrQuantError(f"{artifact}: not a directory (expected an asrquant export --format transformers.js)")
    info = json.dumps(artifact_info(artifact)).encode()
    problem = node_modules_problem(node_modules)
    if problem:
        raise AsrQuantError(problem)
    static = Path(str(resources.files(__package__) / "static"))
    routes = {"/vendor/transformers/": node_modules / DIST, "/models/model/": artifact, "/": static}
    return ThreadingHTTPServer((host, port), partial(Handler, routes=routes, info=info))


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread
