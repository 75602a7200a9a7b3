#!/usr/bin/env bash
# What the browser test needs (tests/web/test_browser.py): Debian's chromium and the npm packages of
# web/ (transformers.js, playwright-core) as web/package-lock.json pins them. No browser download:
# playwright-core drives /usr/bin/chromium. Skips what is already there; without root (no apt),
# the test skips and says why.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
    else
        echo "setup-browser: chromium missing and not root: the browser test will skip" >&2
    fi
fi
if command -v npm >/dev/null 2>&1; then
    if [ ! -f web/node_modules/.package-lock.json ] || ! cmp -s web/package-lock.json web/.installed-lock.json; then
        (cd web && npm ci --no-audit --no-fund --loglevel=error) && cp web/package-lock.json web/.installed-lock.json
    fi
else
    echo "setup-browser: npm missing: the browser test will skip" >&2
fi
