#!/usr/bin/env bash
# The browser campaign for one Whisper model: our int4 export (a model saved by `asrquant quantize`
# with the browser target's recipe, calibrated on clips disjoint from these) and transformers.js' own
# q4 (`--ort-q4`: onnxruntime's MatMulNBitsQuantizer on the float export) both transcribe vitw8 + dev
# (33 clips) in headless chromium through `asrquant web`'s page (WebAssembly, 2 threads); then
# compare.py runs our Python runner over our export's graphs and writes the report.
#
#   bash benchmarks/browser/run.sh whisper-tiny.en /tmp/w22/tiny-gptq 37184256
#   (QUANTIZED: `asrquant quantize MODEL --recipe gptq-int4-g64-enc32-emb4 --calib CALIB/manifest.jsonl --out DIR`;
#    the last argument: the float model's parameter count, tied head once, for the fp16 size)
#
# Writes benchmarks/browser/<model>-{ours,ort-q4}-browser.json, <model>.{json,md,png}, <model>-loadavg.txt.
# PYTHON (default .venv/bin/python) and DATA (default ../shared/data) may be set.
set -euo pipefail
cd "$(dirname "$0")/../.."
model=$1 quantized=$2 params=$3
py=${PYTHON:-.venv/bin/python} data=${DATA:-../shared/data}
out=runs/browser/$model here=benchmarks/browser
manifests=("$data/vitw8/manifest.jsonl" "$data/dev/manifest.jsonl")
bash scripts/setup-browser.sh
(while :; do echo "$(date +%s) $(cat /proc/loadavg)"; sleep 15; done) > "$here/$model-loadavg.txt" & sampler=$!
server=
cleanup() { kill "$sampler" 2>/dev/null || true; [ -z "$server" ] || kill "$server" 2>/dev/null || true; }
trap cleanup EXIT
[ -d "$out/ours" ] || "$py" -m asrquant.cli export "$quantized" --format transformers.js --out "$out/ours" --quiet
[ -d "$out/ort-q4" ] || "$py" -m asrquant.cli export "$model" --format transformers.js --ort-q4 --out "$out/ort-q4" --quiet
for v in ours ort-q4; do
    [ -s "$here/$model-$v-browser.json" ] && ! grep -q '"partial": true' "$here/$model-$v-browser.json" && continue
    port=$((20000 + RANDOM % 20000))
    "$py" -m asrquant.cli web "$out/$v" --port "$port" & server=$!
    sleep 5
    shot=(); [ "$v" = ours ] && shot=(--screenshot "$here/$model.png")
    node web/driver.mjs --url "http://127.0.0.1:$port/" --out "$here/$model-$v-browser.json" "${shot[@]}" "${manifests[@]}"
    kill "$server"; wait "$server" 2>/dev/null || true; server=
done
"$py" "$here/compare.py" --ours "$out/ours" "$here/$model-ours-browser.json" \
    --peer "$out/ort-q4" "$here/$model-ort-q4-browser.json" --params "$params" --loadavg "$here/$model-loadavg.txt" \
    --out "$here/$model.json" --markdown "$here/$model.md" "${manifests[@]}"
