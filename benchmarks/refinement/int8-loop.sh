#!/usr/bin/env bash
# Issue 19, item 3 on one model: the cpu artifact (`export --compute int8 --fp16`) of
#   (i)   GPTQ alone (gptq-int4-g64-enc32-emb4),
#   (ii)  GPTQ + DWQ end to end on float products (recipes/…-dwq-e2e.toml),
#   (iii) GPTQ + DWQ end to end through the int8 chain (recipes/…-dwq-e2e-int8.toml),
# on the shared calibration set (same 32 clips for all), benched on the reporting set (80 clips) with
# torch fp32 first, greedy, one thread; then the paired intervals, the teacher-forced KLs on held-out
# calibration clips and the e2e refinements' check KLs.
# usage: benchmarks/refinement/int8-loop.sh [MODEL] [OUT] [GPTQ_DIR]   (from the repository root; PY = the python)
#   GPTQ_DIR: an existing `asrquant quantize MODEL --recipe gptq-int4-g64-enc32-emb4 --calib CALIB` output to reuse
#   ONE_BENCH=1: one bench run of all four rows (the default runs fp32 + (i) first, (ii) + (iii) when they exist,
#   paired by merge.py and a combined report; greedy decoding is deterministic)
set -euo pipefail
M=${1:-whisper-base}
OUT=${2:-runs/int8loop/$M}
Q1=${3:-$OUT/q-gptq}
PY=${PY:-python}
NICE="nice -n 19"
HERE=$(dirname "$0")
mkdir -p "$OUT"
read -r CALIB REPORT < <($PY "$HERE/../tools/sets.py")
cli() { $NICE /usr/bin/time -v $PY -m asrquant.cli "$@"; }
quantize() {  # out recipe
  [ -f "$1/manifest.json" ] && return 0
  uptime > "$1.load"
  cli quantize "$M" --recipe "$2" --calib "$CALIB" --out "$1" --threads 1 --verbose --quiet > "$1.md" 2> "$1.time"
  uptime >> "$1.load"
}
quantize "$Q1" gptq-int4-g64-enc32-emb4
quantize "$OUT/q-e2e" "$HERE/recipes/gptq-int4-g64-enc32-emb4-dwq-e2e.toml" &
quantize "$OUT/q-e2e-int8" "$HERE/recipes/gptq-int4-g64-enc32-emb4-dwq-e2e-int8.toml" &
wait
for q in "$Q1" "$OUT/q-e2e" "$OUT/q-e2e-int8"; do
  c=$OUT/cpu-$(basename "$q" | sed 's/^q-//')
  [ -f "$c/manifest.json" ] || cli export "$q" --compute int8 --fp16 --out "$c" --quiet > "$c.log" 2> "$c.time"
done
bench() {  # name models...
  local name=$1; shift
  uptime > "$OUT/$name.load"
  cli bench "$@" --beam 1 --threads 1 --data "$REPORT" --json "$OUT/$name.json" --markdown "$OUT/$name.md" \
      > "$OUT/$name.log" 2> "$OUT/$name.time"
  uptime >> "$OUT/$name.load"
}
if [ -n "${ONE_BENCH:-}" ]; then
  bench bench --model "$M" --model "$OUT/cpu-gptq" --model "$OUT/cpu-e2e" --model "$OUT/cpu-e2e-int8"
  cp "$OUT/bench.json" "$OUT/combined.json"
else
  bench bench-a --model "$M" --model "$OUT/cpu-gptq"
  bench bench-b --model "$OUT/cpu-e2e" --model "$OUT/cpu-e2e-int8"
  $PY "$HERE/join_reports.py" "$OUT/bench-a.json" "$OUT/bench-b.json" --out "$OUT/combined.json"
fi
$PY "$HERE/merge.py" "$OUT/combined.json" --out "$OUT/merged.md"
for pair in "$M $OUT/cpu-gptq" "$M $OUT/cpu-e2e" "$M $OUT/cpu-e2e-int8" "$OUT/cpu-gptq $OUT/cpu-e2e-int8" \
            "$OUT/cpu-e2e $OUT/cpu-e2e-int8"; do
  echo "$pair:"; $PY "$HERE/../whisper-cpp/paired.py" "$OUT/combined.json" $pair
done > "$OUT/paired.txt"
$NICE /usr/bin/time -v $PY "$HERE/int8_kl.py" "$M" "$Q1" "$OUT/q-e2e" "$OUT/q-e2e-int8" --clips 8 --json "$OUT/kl.json" \
    > "$OUT/kl.log" 2> "$OUT/kl.time"
for r in e2e e2e-int8; do
  $NICE /usr/bin/time -v $PY "$HERE/e2e-checks.py" "$M" "$HERE/recipes/gptq-int4-g64-enc32-emb4-dwq-$r.toml" --threads 1 \
      > "$OUT/checks-$r.log" 2> "$OUT/checks-$r.time" &
done
wait
