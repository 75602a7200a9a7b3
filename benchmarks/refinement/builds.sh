#!/usr/bin/env bash
# Issue 19: the built-in refined recipe judged on several builds. The same recipe on the same clips
# gives other tensors on another CPU or on another thread count (GPTQ decides each rounding on float
# sums whose last bits follow the kernels: repeat-check.sh, THREADS_B=1), and such builds read up
# to 1 pp apart on the wide set. whisper-base's built-in gptq-int4-g64-enc32-emb4-dwq is built a
# third time here (`dwqc`: as a user runs it, `--calib "$(asrquant data default --calib-pool)"`,
# --threads 2), exported as the `cpu` target, benched alone on the wide set (greedy, one thread),
# and builds_mean.py gives each build's difference from fp32 and the difference of their mean.
# Builds: whisper-base wide-report.sh's dwq348 (AMD EPYC, 2 threads), table-dwq.sh's dwqb (Intel
# Xeon, 1 thread), dwqc (Intel Xeon, 2 threads); whisper-tiny.en (nothing built here)
# wide-report.sh's dwq348 (AMD EPYC), builtin-dwq.sh's (Intel, 2 threads), table-dwq.sh's dwqb
# (Intel, 1 thread). fp32 gives the same text on both CPUs (machine-check.sh). A measurement, no choice.
#
#   bash benchmarks/refinement/builds.sh WORK WIDE   (after wide-report.sh, builtin-dwq.sh, table-dwq.sh)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: builds.sh WORK WIDE}
WIDE=${2:?usage: builds.sh WORK WIDE}
PY=${PYTHON:-python}
OUT=$HERE/results/builds
W=$HERE/results/wide T=$HERE/results/table
mkdir -p "$OUT"
$PY -c "from asrquant.cpu import describe_cpu; print(describe_cpu())" > "$OUT/cpu.txt"
M=whisper-base
q=$WORK/$M-q-dwqc
[ -f "$q/manifest.json" ] || /usr/bin/time -v $PY -m asrquant.cli quantize $M --recipe gptq-int4-g64-enc32-emb4-dwq \
    --calib "$($PY -m asrquant.cli data default --calib-pool)" --out "$q" --threads 2 --verbose --quiet \
    > "$OUT/$M-q-dwqc.md" 2> "$OUT/$M-q-dwqc.time.txt"
[ -f "$WORK/$M-cpu-dwqc/manifest.json" ] || $PY -m asrquant.cli export "$q" --compute int8 --fp16 --attention int8 \
    --out "$WORK/$M-cpu-dwqc" --quiet
$PY "$HERE/complete.py" "$OUT/$M-wide-dwqc.json" || $PY -m asrquant.cli bench --model "$WORK/$M-cpu-dwqc" \
    --data "$($PY "$HERE/wide_set.py" "$WIDE")" --threads 1 --jobs 1 \
    --json "$OUT/$M-wide-dwqc.json" --markdown "$OUT/$M-wide-dwqc.md"
$PY "$HERE/join_reports.py" "$W/$M-wide.json" "$T/$M-wide.json" "$OUT/$M-wide-dwqc.json" --out "$OUT/$M-builds-all.json"
$PY "$HERE/builds_mean.py" "$OUT/$M-builds-all.json" $M "$WORK/$M-cpu-dwq348" "$WORK/$M-cpu-dwqb" "$WORK/$M-cpu-dwqc" \
    | tee "$OUT/$M-builds.txt"
M=whisper-tiny.en
$PY "$HERE/join_reports.py" "$W/$M-wide-rest.json" "$W/$M-wide.json" "$W/$M-wide-builtin-dwq.json" "$T/$M-wide.json" \
    --out "$OUT/$M-builds-all.json"
$PY "$HERE/builds_mean.py" "$OUT/$M-builds-all.json" $M "$WORK/$M-cpu-dwq348" "$WORK/$M-cpu-builtin-dwq" \
    "$WORK/$M-cpu-dwqb" | tee "$OUT/$M-builds.txt"
# The builds benched on the tuning clips too (dwq-pool.sh's dwq348, table-dwq.sh's dwqb), each
# against fp32 there (calib-size's tune-float.json): does a build's rank carry from set to set?
C=$HERE/results/calib-size
for M in whisper-base whisper-tiny.en; do
  $PY "$HERE/join_reports.py" "$C/$M-tune-float.json" "$C/$M-tune-dwq348.json" "$T/$M-tune.json" \
      --out "$OUT/$M-tune-builds-all.json"
  $PY "$HERE/builds_mean.py" "$OUT/$M-tune-builds-all.json" $M "$WORK/$M-cpu-dwq348" "$WORK/$M-cpu-dwqb" \
      | tee "$OUT/$M-tune-builds.txt"
done
