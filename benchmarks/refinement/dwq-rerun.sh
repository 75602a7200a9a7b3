#!/usr/bin/env bash
# Issue 19: is a quantization repeatable? dwq-halves.sh's two quantizations were run a second time,
# the same command on the same recipe and rebuilt calibration clips (calib_pool.py), and their
# reports differ: GPTQ's relative weight errors in the 4th digit, the end-to-end check KL 0.0163 ->
# 0.01186 in the first run and 0.01885 -> 0.01496 in the second (dwqh1). So the second run's
# artifacts (the ones dwq-halves.sh benched on the wide set) are benched again on the reporting and tuning
# clips, greedy, one thread per row, two rows at once, and paired.py gives, per half, second run -
# first run on the same clips (repeatability of one calibration), and the halves' difference in the
# second run (beside the first run's, dwq-halves.sh). A measurement, no choice.
#
#   bash benchmarks/refinement/dwq-rerun.sh WORK [MODEL]   (after dwq-halves.sh WORK ran twice)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: dwq-rerun.sh WORK [MODEL]}
PY=${PYTHON:-python}
M=${2:-whisper-base}
OUT=$HERE/results/calib-size
read -r _ REPORT < <($PY "$HERE/../tools/sets.py")
rows=(--model "$WORK/$M-cpu-dwqh1" --model "$WORK/$M-cpu-dwqh2")
for set in report tune; do
  data=$REPORT; [ $set = tune ] && data=$WORK/tune-all.jsonl
  $PY "$HERE/complete.py" "$OUT/$M-$set-dwqh-run2.json" || $PY -m asrquant.cli bench "${rows[@]}" --data "$data" --threads 1 \
      --jobs 2 --json "$OUT/$M-$set-dwqh-run2.json" --markdown "$OUT/$M-$set-dwqh-run2.md"
  base=("$OUT/$M-$set.json"); [ $set = tune ] && base=("$OUT/$M-tune-float.json")  # fp32 first (dwq-halves.sh)
  $PY "$HERE/merge.py" "${base[@]}" "$OUT/$M-$set-dwqh-run2.json" --out "$OUT/$M-$set-dwqh-run2-merged.md"
  $PY "$HERE/join_reports.py" "$OUT/$M-$set-dwqh-all.json" "$OUT/$M-$set-dwqh-run2.json" --last-suffix "#run2" \
      --out "$OUT/$M-$set-dwqh-run2-all.json"
  { for h in 1 2; do q=$WORK/$M-cpu-dwqh$h
      echo "dwqh$h, first run -> second run:"; $PY "$HERE/../whisper-cpp/paired.py" "$OUT/$M-$set-dwqh-run2-all.json" "$q" "$q#run2"
      echo "fp32 -> dwqh$h, second run:"; $PY "$HERE/../whisper-cpp/paired.py" "$OUT/$M-$set-dwqh-run2-all.json" $M "$q#run2"
    done
    echo "halves, second run (dwqh1 -> dwqh2):"
    $PY "$HERE/../whisper-cpp/paired.py" "$OUT/$M-$set-dwqh-run2-all.json" "$WORK/$M-cpu-dwqh1#run2" "$WORK/$M-cpu-dwqh2#run2"
  } | tee "$OUT/$M-$set-dwqh-run2-paired.txt"
done
