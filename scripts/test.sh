#!/usr/bin/env bash
# Set up, then lint and run the whole test suite (the unit suite, then the Qwen3-ASR reference parity
# tests in their own environment so the reference's pinned dependencies stay out of .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup-browser.sh  # chromium + web/'s npm packages, for tests/web/test_browser.py
.venv/bin/ruff check src tests benchmarks  # the style of pyproject.toml's [tool.ruff]
.venv/bin/python -m pytest -q "$@"
if [ -f scripts/test-qwen-parity.sh ]; then
    bash scripts/test-qwen-parity.sh
fi
