"""``asrquant web ARTIFACT [--port N]``: serve the in-browser transcription page on localhost."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("web", help="serve a page that transcribes in the browser with a transformers.js export",
                              description=__doc__)
    p.add_argument("artifact", help="an asrquant export --format transformers.js (or --target browser) directory")
    p.add_argument("--port", type=int, default=8000, help="localhost port (0: any free one)")
    p.add_argument("--node-modules", type=Path, default=None, metavar="DIR",
                   help="where npm installed the page's packages (default: $ASRQUANT_WEB_NODE_MODULES, else the "
                        "checkout's web/node_modules)")
    p.set_defaults(func=run)


def default_node_modules() -> Path:
    from .server import REPO_WEB

    return Path(os.environ.get("ASRQUANT_WEB_NODE_MODULES") or REPO_WEB / "node_modules")


def run(args) -> int:
    from .server import make_server

    server = make_server(args.artifact, args.node_modules or default_node_modules(), args.port)
    host, port = server.server_address[:2]
    print(f"serving {args.artifact} at http://{host}:{port}/ (Ctrl-C stops)", file=sys.stderr)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
