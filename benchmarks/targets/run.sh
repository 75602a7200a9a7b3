#!/usr/bin/env bash
# The targets campaign: the cpu target's artifact of whisper-base with its model card measured
# on vitw8 (calibrated on the disjoint dev set), the same clips through `asrquant bench`, and the
# demo. Run from the repository root after `bash scripts/setup.sh`; reports go to $OUT.
set -euo pipefail
OUT=${OUT:-runs/targets}
A=${ASRQUANT:-.venv/bin/asrquant}
DATA=${DATA:-../shared/data}
mkdir -p "$OUT"
lscpu > "$OUT/lscpu.txt"
$A export whisper-base --target cpu --calib "$DATA/dev/manifest.jsonl" --eval "$DATA/vitw8/manifest.jsonl" \
    --out "$OUT/whisper-base-cpu" --quiet
cp "$OUT/whisper-base-cpu/README.md" "$OUT/whisper-base-cpu-card.md"
$A bench --model whisper-base --model "$OUT/whisper-base-cpu" --data "$DATA/vitw8/manifest.jsonl" \
    --json "$OUT/bench-vitw8.json" --markdown "$OUT/bench-vitw8.md"
$A demo --out "$OUT/demo"
