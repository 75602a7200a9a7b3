#!/usr/bin/env bash
# calib-size.sh's second step: the reporting bench, after the rule (calib_size_choose.py) has read
# the tuning bench. Per model, one bench run with torch fp32 first, then q32 (as it ships), qall
# only where the rule chose it, and for whisper-base the two halves (qh1, qh2: repeatability is a
# measurement, not a choice, so it is reported either way); greedy, one thread per row, two at once.
# Sets: the reporting clips (benchmarks/tools/sets.py: 80 clips, used for no choice) and the real
# speech of ../shared/data (vitw8 + dev + real: en, zh and seven more languages).
#
#   bash benchmarks/refinement/calib-size-report.sh WORK SHARED_DATA   (after calib-size.sh WORK)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: calib-size-report.sh WORK SHARED_DATA}
DATA=${2:?}
PY=${PYTHON:-python}
OUT=$HERE/results/calib-size
read -r _ REPORT < <($PY "$HERE/../tools/sets.py")
for m in whisper-base whisper-tiny.en; do
  verdict=$($PY "$HERE/calib_size_choose.py" "$OUT/$m-tune.json" "$WORK/$m-cpu32" "$WORK/$m-cpuall")
  echo "$m: $verdict" | tee "$OUT/$m-choice.txt"
  rows=(--model "$m" --model "$WORK/$m-cpu32")
  case $verdict in chosen*) rows+=(--model "$WORK/$m-cpuall");; esac
  [ "$m" = whisper-base ] && rows+=(--model "$WORK/$m-cpuh1" --model "$WORK/$m-cpuh2")
  for set in report real; do
    if [ $set = report ]; then data=(--data "$REPORT"); else
      data=(--data "$DATA/vitw8/manifest.jsonl" --data "$DATA/dev/manifest.jsonl" --data "$DATA/real/manifest.jsonl"); fi
    $PY "$HERE/complete.py" "$OUT/$m-$set.json" || $PY -m asrquant.cli bench "${rows[@]}" "${data[@]}" --threads 1 --jobs 2 \
        --json "$OUT/$m-$set.json" --markdown "$OUT/$m-$set.md"
  done
done
