#!/usr/bin/env bash
# Issue 19: the built-in refined recipe as a user runs it (README, Usage), on the wide reporting
# set. `asrquant quantize MODEL --recipe gptq-int4-g64-enc32-emb4-dwq --calib "$(asrquant data
# default --calib-pool)"`, exported as the `cpu` target (--compute int8 --fp16 --attention int8),
# benched alone on wide_set.py's 1080 clips (greedy, one thread) and joined with wide-finish.sh's
# run of fp32, q32 and faster-whisper int8 on the same machine and the same audio files (greedy
# decoding is deterministic there). Cost of the quantization (wall, peak RSS) in $M-builtin-dwq.time.txt.
# Its rules and clips are dwq-pool.sh's `dwq348`: against wide-report.sh's `dwq348` row (quantized
# on another machine; fp32 gives the same text on both, machine-check.sh) it is the same recipe
# built twice. A measurement, no choice.
#
#   bash benchmarks/refinement/builtin-dwq.sh WORK WIDE MODEL   (after wide-finish.sh WORK WIDE MODEL)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: builtin-dwq.sh WORK WIDE MODEL}
WIDE=${2:?usage: builtin-dwq.sh WORK WIDE MODEL}
M=${3:?usage: builtin-dwq.sh WORK WIDE MODEL}
PY=${PYTHON:-python}
OUT=$HERE/results/wide
q=$WORK/$M-q-builtin-dwq
[ -f "$q/manifest.json" ] || /usr/bin/time -v $PY -m asrquant.cli quantize "$M" --recipe gptq-int4-g64-enc32-emb4-dwq \
    --calib "$($PY -m asrquant.cli data default --calib-pool)" --out "$q" --threads 2 --verbose --quiet \
    > "$OUT/$M-builtin-dwq.md" 2> "$OUT/$M-builtin-dwq.time.txt"
[ -f "$WORK/$M-cpu-builtin-dwq/manifest.json" ] || $PY -m asrquant.cli export "$q" --compute int8 --fp16 \
    --attention int8 --out "$WORK/$M-cpu-builtin-dwq" --quiet
$PY "$HERE/complete.py" "$OUT/$M-wide-builtin-dwq.json" || $PY -m asrquant.cli bench --model "$WORK/$M-cpu-builtin-dwq" \
    --data "$($PY "$HERE/wide_set.py" "$WIDE")" --threads 1 --jobs 1 \
    --json "$OUT/$M-wide-builtin-dwq.json" --markdown "$OUT/$M-wide-builtin-dwq.md"
$PY "$HERE/join_reports.py" "$OUT/$M-wide-rest.json" "$OUT/$M-wide-builtin-dwq.json" --out "$OUT/$M-wide-here-all.json"
$PY "$HERE/merge.py" "$OUT/$M-wide-here-all.json" --out "$OUT/$M-wide-here-merged.md"
$PY "$HERE/by_condition.py" "$OUT/$M-wide-here-all.json" | tee "$OUT/$M-wide-here-conditions.md"
$PY "$HERE/join_reports.py" "$OUT/$M-wide.json" "$OUT/$M-wide-builtin-dwq.json" --out "$OUT/$M-wide-dwq-builds-all.json"
{ echo "dwq348 (wide-report.sh) -> the built-in recipe:"
  $PY "$HERE/../whisper-cpp/paired.py" "$OUT/$M-wide-dwq-builds-all.json" "$WORK/$M-cpu-dwq348" "$WORK/$M-cpu-builtin-dwq"
} | tee "$OUT/$M-wide-dwq-builds.txt"
$PY "$HERE/merge.py" "$OUT/$M-wide-here-all.json" --base "$M-cpu32" --out "$OUT/$M-wide-here-vs-q32.md"
