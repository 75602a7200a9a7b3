#!/usr/bin/env bash
# Issue 19: sign steps on four clips' gradients. The built-in refined recipe takes each sign step
# on one clip's gradient; where a scale's gradient is small its sign is that clip's noise, and two
# builds of the recipe (another thread count, another last bit) read ~1 pp apart on the wide set.
# Candidate `b4` (recipes/dwq-b4.toml): the built-in gptq-int4-g64-enc32-emb4-dwq with `batch = 4`,
# 86 steps instead of 344 (the same 344 clip passes, the same cost) and a step size four times
# larger (0.001: the same largest total move of a scale). Calibration: the built-in pool.
# Builds, on this machine: the candidate twice, at 1 and at 2 threads, at once (`b4t1`, `b4t2`: a
# thread count draws another build); the base is the built-in recipe's two builds on this CPU
# model at the same thread counts, as wild-calib.sh compared them: `dwqb` (1 thread) and
# `builtin-dwq` (tiny.en) or `dwqc` (whisper-base), whose tuning rows wild-calib.sh benched
# (results/wild/$M-tune-base.json: fp32 and both builds).
# The rule, fixed before the run: one bench of the tuning clips (tune-all.jsonl, 384 clips, 5202
# words) for b4t1 and b4t2, greedy, one thread per row, two rows at once, joined to the base rows
# clip by clip (greedy decoding is deterministic on one CPU model); `b4` is chosen if the mean of
# its two builds has fewer word errors than the mean of the base's two and no more new failures on
# average (builds_choose.py). Only if chosen: both builds on the wide reporting set (1080 clips),
# against the built-in recipe's three builds there (builds.sh) and fp32.
#
#   bash benchmarks/refinement/batch-steps.sh WORK WIDE [MODEL]   (after wild-calib.sh)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: batch-steps.sh WORK WIDE [MODEL]}
WIDE=${2:?usage: batch-steps.sh WORK WIDE [MODEL]}
M=${3:-whisper-tiny.en}
PY=${PYTHON:-python}
OUT=$HERE/results/batch
BASE_ROWS=$HERE/results/wild/$M-tune-base.json
case $M in
  whisper-base) BASE2=dwqc ;;
  whisper-tiny.en) BASE2=builtin-dwq ;;
  *) echo "batch-steps.sh: no base builds for $M" >&2; exit 2 ;;
esac
[ -f "$BASE_ROWS" ] || { echo "batch-steps.sh: $BASE_ROWS missing: run wild-calib.sh first" >&2; exit 2; }
mkdir -p "$OUT"
$PY -c "from asrquant.cpu import describe_cpu; print(describe_cpu())" > "$OUT/cpu.txt"
POOL=$($PY -m asrquant.cli data default --calib-pool)
quantize() {  # tag threads
  local q="$WORK/$M-q-$1"
  [ -f "$q/manifest.json" ] || { uptime > "$OUT/$M-$1.load.txt"
    /usr/bin/time -v $PY -m asrquant.cli quantize "$M" --recipe "$HERE/recipes/dwq-b4.toml" --calib "$POOL" \
        --out "$q" --threads "$2" --verbose --quiet > "$OUT/$M-q-$1.md" 2> "$OUT/$M-q-$1.time.txt"
    uptime >> "$OUT/$M-$1.load.txt"; }
  [ -f "$WORK/$M-cpu-$1/manifest.json" ] || $PY -m asrquant.cli export "$q" --compute int8 --fp16 --attention int8 \
      --out "$WORK/$M-cpu-$1" --quiet
}
B1=$WORK/$M-cpu-dwqb B2=$WORK/$M-cpu-$BASE2 C1=$WORK/$M-cpu-b4t1 C2=$WORK/$M-cpu-b4t2
quantize b4t1 1 &
quantize b4t2 2 &
wait %1 && wait %2
$PY "$HERE/complete.py" "$OUT/$M-tune-b4.json" || $PY -m asrquant.cli bench --model "$C1" --model "$C2" \
    --data "$WORK/tune-all.jsonl" --threads 1 --jobs 2 --json "$OUT/$M-tune-b4.json" --markdown "$OUT/$M-tune-b4.md"
$PY "$HERE/join_reports.py" "$BASE_ROWS" "$OUT/$M-tune-b4.json" --out "$OUT/$M-tune-all.json"
$PY "$HERE/builds_choose.py" "$OUT/$M-tune-all.json" "$M" --base "$B1" "$B2" --candidate "$C1" "$C2" \
    | tee "$OUT/$M-tune-choice.txt"
$PY "$HERE/by_condition.py" "$OUT/$M-tune-all.json" > "$OUT/$M-tune-conditions.md"
grep -q "^chosen" "$OUT/$M-tune-choice.txt" || exit 0
$PY "$HERE/complete.py" "$OUT/$M-wide.json" || $PY -m asrquant.cli bench --model "$C1" --model "$C2" \
    --data "$($PY "$HERE/wide_set.py" "$WIDE")" --threads 1 --jobs 2 --json "$OUT/$M-wide.json" --markdown "$OUT/$M-wide.md"
$PY "$HERE/join_reports.py" "$HERE/results/builds/$M-builds-all.json" "$OUT/$M-wide.json" --out "$OUT/$M-wide-all.json"
$PY "$HERE/builds_choose.py" "$OUT/$M-wide-all.json" "$M" --base "$WORK/$M-cpu-dwq348" "$B1" "$B2" \
    --candidate "$C1" "$C2" | tee "$OUT/$M-wide-builds.txt"
$PY "$HERE/by_condition.py" "$OUT/$M-wide-all.json" > "$OUT/$M-wide-conditions.md"
