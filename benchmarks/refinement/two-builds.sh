#!/usr/bin/env bash
# Issue 19: a candidate recipe judged on two builds against the built-in refined recipe's two, as
# batch-steps.sh judged dwq-b4 (that script calls this one). The candidate RECIPE is
# built twice on the built-in calibration pool, at 1 and at 2 threads, at once (TAG1, TAG2: a
# thread count draws another build); the base is the built-in gptq-int4-g64-enc32-emb4-dwq's two
# builds on this CPU model at the same thread counts, `dwqb` (1 thread) and `builtin-dwq`
# (tiny.en) or `dwqc` (whisper-base), whose tuning rows wild-calib.sh benched
# (results/wild/$M-tune-base.json: fp32 and both builds).
# The rule, fixed before a run by committing the candidate's recipe: one bench of the tuning clips
# (tune-all.jsonl, 384 clips, 5202 words) for both candidate builds, greedy, one thread per row,
# two rows at once, joined to the base rows clip by clip (greedy decoding is deterministic on one
# CPU model); the candidate is chosen if the mean of its two builds has fewer word errors than the
# mean of the base's two and no more new failures on average (builds_choose.py). Only if chosen:
# both builds on the wide reporting set (1080 clips), against the built-in recipe's three builds
# there (builds.sh) and fp32.
#
# CALIB (optional; "" for the built-in pool): the candidate's calibration manifest, instead of the
# built-in pool (the base builds' calibration either way).
# SET (optional): `tune` (the default, as above) or `fresh`: the fresh tuning clips of fresh_set.py
# (the tuning sentences, seed 9, 384 clips, 5202 words), on which the built-in recipe was not
# chosen, the base rows from fresh-tune.sh (results/fresh/$M-fresh.json); the same rule there.
#
#   bash benchmarks/refinement/two-builds.sh WORK WIDE MODEL TAG RECIPE [CALIB [SET]]   (after wild-calib.sh)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
USAGE="usage: two-builds.sh WORK WIDE MODEL TAG RECIPE [CALIB [SET]]"
WORK=${1:?$USAGE}
WIDE=${2:?$USAGE}
M=${3:?$USAGE}
TAG=${4:?$USAGE}
RECIPE=${5:?$USAGE}
PY=${PYTHON:-python}
OUT=$HERE/results/$TAG
case ${7:-tune} in
  tune) BASE_ROWS=$HERE/results/wild/$M-tune-base.json TUNE=$WORK/tune-all.jsonl ;;
  fresh) BASE_ROWS=$HERE/results/fresh/$M-fresh.json TUNE=$WORK/tune-fresh.jsonl ;;
  *) echo "two-builds.sh: SET must be tune or fresh, not ${7}" >&2; exit 2 ;;
esac
source "$HERE/campaign-lib.sh"
BASE2=$(base2)
[ -f "$BASE_ROWS" ] || { echo "two-builds.sh: $BASE_ROWS missing: run wild-calib.sh (or fresh-tune.sh) first" >&2; exit 2; }
mkdir -p "$OUT"
$PY -c "from asrquant.cpu import describe_cpu; print(describe_cpu())" > "$OUT/cpu.txt"
POOL=${6:-$($PY -m asrquant.cli data default --calib-pool)}
B1=$WORK/$M-cpu-dwqb B2=$WORK/$M-cpu-$BASE2 C1=$WORK/$M-cpu-${TAG}t1 C2=$WORK/$M-cpu-${TAG}t2
build "${TAG}t1" 1 "$RECIPE" "$POOL" &
build "${TAG}t2" 2 "$RECIPE" "$POOL" &
wait %1 && wait %2
$PY "$HERE/complete.py" "$OUT/$M-tune.json" || $PY -m asrquant.cli bench --model "$C1" --model "$C2" \
    --data "$TUNE" --threads 1 --jobs 2 --json "$OUT/$M-tune.json" --markdown "$OUT/$M-tune.md"
$PY "$HERE/join_reports.py" "$BASE_ROWS" "$OUT/$M-tune.json" --out "$OUT/$M-tune-all.json"
$PY "$HERE/builds_choose.py" "$OUT/$M-tune-all.json" "$M" --base "$B1" "$B2" --candidate "$C1" "$C2" \
    | tee "$OUT/$M-tune-choice.txt"
$PY "$HERE/by_condition.py" "$OUT/$M-tune-all.json" > "$OUT/$M-tune-conditions.md"
grep -q "^chosen" "$OUT/$M-tune-choice.txt" || exit 0
bash "$HERE/wide-builds.sh" "$WORK" "$WIDE" "$M" "$TAG"
