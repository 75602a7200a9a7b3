#!/usr/bin/env bash
# Issue 19: one recipe under the size budget (whisper-base, or MODEL in the environment), judged by the rule this campaign's
# candidates share (realloc.sh, decoder-damp.sh, pseudo-labels.sh, dwq-pool.sh), fixed before
# their runs: quantized (on the default calibration set, or CALIB), exported as the `cpu` artifact
# (--compute int8 --fp16 --attention int8), benched greedy with one thread on calib-size.sh's 384
# tuning clips; it is chosen if it has fewer word errors than calib-size.sh's `q32` row there (or
# BASE, in the environment: another of its rows) and no more failures, its quantization report
# says at most 4.5 bits per weight and its artifact is at most 0.30 x fp16 (the float row of
# compute-gap.sh's report is the fp16 checkpoint: 43.6 MB for whisper-base). Only then is
# it benched on the reporting clips (fp32 of calib-size-report.sh's run pairs with it by merge.py)
# and on the real speech of DATA (default ../shared/data: vitw8 + dev + real), the third check.
#
#   bash benchmarks/refinement/candidate.sh WORK NAME RECIPE.toml [CALIB]   (after calib-size.sh and calib-size-report.sh WORK)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: candidate.sh WORK NAME RECIPE}
N=${2:?usage: candidate.sh WORK NAME RECIPE}
RECIPE=${3:?usage: candidate.sh WORK NAME RECIPE}
PY=${PYTHON:-python}
OUT=$HERE/results/calib-size
M=${MODEL:-whisper-base}
read -r CALIB REPORT < <($PY "$HERE/../tools/sets.py")
CALIB=${4:-$CALIB}
BASE=${BASE:-$WORK/$M-cpu32}
[ -f "$WORK/$M-q-$N/manifest.json" ] || $PY -m asrquant.cli quantize $M --recipe "$RECIPE" --calib "$CALIB" \
    --out "$WORK/$M-q-$N" --threads 2 --verbose --quiet > "$OUT/$M-q-$N.md"
[ -f "$WORK/$M-cpu-$N/manifest.json" ] || $PY -m asrquant.cli export "$WORK/$M-q-$N" --compute int8 --fp16 \
    --attention int8 --out "$WORK/$M-cpu-$N" --quiet
$PY "$HERE/complete.py" "$OUT/$M-tune-$N.json" || $PY -m asrquant.cli bench --model "$WORK/$M-cpu-$N" --data "$WORK/tune-all.jsonl" \
    --threads 1 --json "$OUT/$M-tune-$N.json" --markdown "$OUT/$M-tune-$N.md"
$PY "$HERE/join_reports.py" "$OUT/$M-tune.json" "$OUT/$M-tune-$N.json" --out "$OUT/$M-tune-$N-all.json"
verdict=$($PY "$HERE/calib_size_choose.py" "$OUT/$M-tune-$N-all.json" "$BASE" "$WORK/$M-cpu-$N")
bits=$(grep -o -E "[0-9.]+ bits/weight on average" "$OUT/$M-q-$N.md" | cut -d' ' -f1)
mb=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['runs'][0]['size_bytes'] / 1e6)" "$OUT/$M-tune-$N.json")
limit=$($PY -c "import json,sys; print(0.30 * json.load(open(sys.argv[1]))['runs'][0]['size_bytes'] / 1e6)" "$OUT/$M-tune-float.json")
$PY -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 4.5 and float(sys.argv[2]) <= float(sys.argv[3]) else 1)" "$bits" "$mb" "$limit" \
    || verdict="not chosen: over the budget ($bits bits per weight, $mb MB); $verdict"
verdict="$verdict; $bits bits per weight, $mb MB"
echo "$N: $verdict" | tee "$OUT/$M-$N-choice.txt"
$PY "$HERE/../whisper-cpp/paired.py" "$OUT/$M-tune-$N-all.json" "$BASE" "$WORK/$M-cpu-$N" \
    | tee "$OUT/$M-tune-$N-paired.txt"
case $verdict in chosen*)
  $PY "$HERE/complete.py" "$OUT/$M-report-$N.json" || $PY -m asrquant.cli bench --model "$WORK/$M-cpu-$N" --data "$REPORT" \
      --threads 1 --json "$OUT/$M-report-$N.json" --markdown "$OUT/$M-report-$N.md"
  $PY "$HERE/merge.py" "$OUT/$M-report.json" "$OUT/$M-report-$N.json" --out "$OUT/$M-report-$N-merged.md"
  DATA=${DATA:-$HERE/../../../shared/data}
  $PY "$HERE/complete.py" "$OUT/$M-real-$N.json" || $PY -m asrquant.cli bench --model "$WORK/$M-cpu-$N" --data "$DATA/vitw8/manifest.jsonl" \
      --data "$DATA/dev/manifest.jsonl" --data "$DATA/real/manifest.jsonl" --threads 1 \
      --json "$OUT/$M-real-$N.json" --markdown "$OUT/$M-real-$N.md"
  $PY "$HERE/join_reports.py" "$OUT/$M-real.json" "$OUT/$M-real-$N.json" --out "$OUT/$M-real-$N-all.json"
  $PY "$HERE/per_language.py" "$OUT/$M-real-$N-all.json" | tee "$OUT/$M-real-$N-languages.txt";;
esac
