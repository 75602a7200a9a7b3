#!/usr/bin/env bash
# Behaviour of the family-folder layout against the code before it, bit for bit.
#
#   bash benchmarks/layout-parity/run.sh OUT_DIR [SRC_DIR]
#
# For whisper-tiny.en and whisper-base: quantize by gptq-int4-g64 on ../shared/data/dev, export
# that directory to ONNX, then bench torch fp32, the quantized directory and its ONNX export on
# the vitw8 clips (greedy, 2 threads). SRC_DIR (default: this checkout's src/) selects the code,
# so the same script runs on an older checkout with this checkout's .venv. compare.py then
# compares two OUT_DIRs transcript by transcript, and the weights by sha256.
set -euo pipefail
OUT=$(realpath -m "$1")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SRC=$(realpath "${2:-$ROOT/src}")
DATA=$(realpath "$ROOT/../shared/data")
PY="$ROOT/.venv/bin/python"
export PYTHONPATH="$SRC"
mkdir -p "$OUT"
cli() { "$PY" -c 'import sys; from asrquant.cli import main; sys.exit(main())' "$@"; }
for model in whisper-tiny.en whisper-base; do
    [ -d "$OUT/$model-gptq" ] || cli quantize "$model" --recipe gptq-int4-g64 \
        --calib "$DATA/dev/manifest.jsonl" --out "$OUT/$model-gptq" --quiet
    [ -d "$OUT/$model-gptq-onnx" ] || cli export "$OUT/$model-gptq" --out "$OUT/$model-gptq-onnx" --quiet
    cli bench --model "$model" --model "$OUT/$model-gptq" --model "$OUT/$model-gptq-onnx" \
        --data "$DATA/vitw8/manifest.jsonl" --beam 1 --threads 2 --json "$OUT/$model-vitw8.json" >/dev/null
done
echo "done: $OUT (code from $SRC)"
