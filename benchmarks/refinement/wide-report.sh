#!/usr/bin/env bash
# Issue 19: the `cpu` artifacts on the wide reporting set (wide_set.py: the 40 reporting sentences,
# 3 more seeds, clean and every condition, 1080 clips): with ~15,000 held-out words, is the upper
# end of the interval from float below +1.0 pp, and is every condition within +1.5 pp? A
# measurement, no choice: one bench per model with torch fp32 first, then the artifact as it ships
# (`q32`, calib-size.sh), `dwq348` (dwq-pool.sh) and faster-whisper int8 (the peer), greedy, one
# thread per row, two rows at once. merge.py gives each row's difference from fp32 with failures;
# by_condition.py the same per condition. MODELS (environment) default: whisper-base whisper-tiny.en.
#
#   bash benchmarks/refinement/wide-report.sh WORK WIDE   (after calib-size.sh and dwq-pool.sh WORK)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: wide-report.sh WORK WIDE}
WIDE=${2:?usage: wide-report.sh WORK WIDE}
PY=${PYTHON:-python}
OUT=$HERE/results/wide
mkdir -p "$OUT"
SET=$($PY "$HERE/wide_set.py" "$WIDE")
$PY -c "from asrquant.cpu import describe_cpu; print(describe_cpu())" > "$OUT/cpu.txt"
for m in ${MODELS:-whisper-base whisper-tiny.en}; do
  $PY "$HERE/complete.py" "$OUT/$m-wide.json" || $PY -m asrquant.cli bench --model "$m" --model "$WORK/$m-cpu32" \
      --model "$WORK/$m-cpu-dwq348" --model "faster-whisper:$m:int8" --data "$SET" --threads 1 --jobs 2 \
      --json "$OUT/$m-wide.json" --markdown "$OUT/$m-wide.md"
  $PY "$HERE/merge.py" "$OUT/$m-wide.json" --out "$OUT/$m-wide-merged.md"
  $PY "$HERE/by_condition.py" "$OUT/$m-wide.json" | tee "$OUT/$m-wide-conditions.md"
done
