#!/usr/bin/env bash
# How far a benign 8-bit quantization moves the tuning words (a diagnostic, no choice): the
# built-in `int8` recipe (every Linear int8 per output channel, round to nearest, the token table
# float), exported with float compute (--fp16), benched on calib-size.sh's 384 tuning clips and
# paired clip by clip with compute-gap.sh's fp32 row. attribution.sh has the same row for
# whisper-base; this gives it to any model with a compute-gap.sh report (whisper-tiny.en).
#
#   bash benchmarks/refinement/int8-floor.sh WORK MODEL     (after calib-size.sh and compute-gap.sh WORK)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: int8-floor.sh WORK MODEL}
M=${2:?usage: int8-floor.sh WORK MODEL}
PY=${PYTHON:-python}
OUT=$HERE/results/calib-size
[ -f "$WORK/$M-q-int8/manifest.json" ] || $PY -m asrquant.cli quantize "$M" --recipe int8 --out "$WORK/$M-q-int8" \
    --threads 1 --quiet > "$OUT/$M-q-int8.md"
[ -f "$WORK/$M-float-int8/manifest.json" ] || $PY -m asrquant.cli export "$WORK/$M-q-int8" --fp16 --out "$WORK/$M-float-int8" --quiet
$PY "$HERE/complete.py" "$OUT/$M-tune-int8.json" || $PY -m asrquant.cli bench --model "$WORK/$M-float-int8" --data "$WORK/tune-all.jsonl" \
    --threads 1 --json "$OUT/$M-tune-int8.json" --markdown "$OUT/$M-tune-int8.md"
$PY "$HERE/merge.py" "$OUT/$M-tune-float.json" "$OUT/$M-tune-int8.json" --out "$OUT/$M-tune-int8-merged.md"
