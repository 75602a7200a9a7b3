#!/usr/bin/env bash
# The browser campaign for one model: export it for the browser target, transcribe vitw8 + dev in
# headless chromium through `asrquant web`'s page (WebAssembly, 2 threads), then compare with our
# Python onnxruntime runner over the same graphs. Writes benchmarks/browser/<model>.{json,md,png}.
#
#   bash benchmarks/browser/run.sh whisper-tiny.en CALIB/manifest.jsonl 37184256
#   (the last argument: the float model's parameter count, for the fp16 size: asrquant's Whisper module, tied head counted once)
set -euo pipefail
cd "$(dirname "$0")/../.."
model=$1 calib=$2 params=$3
out=runs/browser/$model-web here=benchmarks/browser data=../shared/data
bash scripts/setup-browser.sh
[ -d "$out" ] || .venv/bin/asrquant export "$model" --target browser --calib "$calib" --out "$out" --quiet
port=$((20000 + RANDOM % 20000))
.venv/bin/asrquant web "$out" --port "$port" & server=$!
trap 'kill $server' EXIT
sleep 3
node web/driver.mjs --url "http://127.0.0.1:$port/" --out "$here/$model-browser.json" --screenshot "$here/$model.png" \
    "$data/vitw8/manifest.jsonl" "$data/dev/manifest.jsonl"
.venv/bin/python "$here/compare.py" "$out" "$here/$model-browser.json" "$data/vitw8/manifest.jsonl" \
    "$data/dev/manifest.jsonl" --params "$params" --out "$here/$model.json" --markdown "$here/$model.md"
