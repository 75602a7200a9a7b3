#!/usr/bin/env bash
# Issue 19: calibrated on degraded speech only. The built-in refined recipe loses most in the
# degraded conditions and next to nothing on clean speech, while half of its calibration pool is
# clean. Candidate `wild`: the built-in gptq-int4-g64-enc32-emb4-dwq on wild_pool.py's pool, the
# built-in pool with every clean clip replaced by the same clip under one condition (same speech,
# sentences, clip count and order; no clip clean, ~43 per condition instead of ~22). GPTQ's
# statistics and the refinement's KL then come from degraded speech only.
# Builds, on this machine: the candidate twice, at 1 and at 2 threads (`wild1`, `wild2`: a thread
# count draws another build); the base is the built-in recipe's two builds on the same CPU model
# at the same thread counts: table-dwq.sh's `dwqb` (1 thread) and, at 2 threads, builds.sh's
# `dwqc` (whisper-base) or builtin-dwq.sh's `builtin-dwq` (whisper-tiny.en).
# The rule, fixed before the run: one bench of the tuning clips (tune-all.jsonl, 384 clips, 5202
# words: fp32, dwqb, dwqc; then wild1, wild2, paired clip by clip: greedy decoding is
# deterministic), greedy, one thread per row, two rows at once; `wild` is chosen if the mean of its
# two builds has fewer word errors than the mean of the base's two and no more new failures on
# average (builds_choose.py). Only if chosen: both builds on the wide reporting set (1080 clips),
# against the built-in recipe's three builds there (builds.sh) and fp32.
#
#   bash benchmarks/refinement/wild-calib.sh WORK WIDE [MODEL]   (after table-dwq.sh and builds.sh)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: wild-calib.sh WORK WIDE [MODEL]}
WIDE=${2:?usage: wild-calib.sh WORK WIDE [MODEL]}
M=${3:-whisper-base}
PY=${PYTHON:-python}
OUT=$HERE/results/wild
source "$HERE/campaign-lib.sh"
BASE2=$(base2)
mkdir -p "$OUT"
$PY -c "from asrquant.cpu import describe_cpu; print(describe_cpu())" > "$OUT/cpu.txt"
POOL=$($PY "$HERE/wild_pool.py" "$WORK")
B1=$WORK/$M-cpu-dwqb B2=$WORK/$M-cpu-$BASE2 C1=$WORK/$M-cpu-wild1 C2=$WORK/$M-cpu-wild2
build wild1 1 gptq-int4-g64-enc32-emb4-dwq "$POOL" &
build wild2 2 gptq-int4-g64-enc32-emb4-dwq "$POOL" &
# the base's rows meanwhile (they need no candidate)
$PY "$HERE/complete.py" "$OUT/$M-tune-base.json" || $PY -m asrquant.cli bench --model "$M" --model "$B1" --model "$B2" \
    --data "$WORK/tune-all.jsonl" --threads 1 --jobs 1 --json "$OUT/$M-tune-base.json" --markdown "$OUT/$M-tune-base.md"
wait %1 && wait %2
$PY "$HERE/complete.py" "$OUT/$M-tune-wild.json" || $PY -m asrquant.cli bench --model "$C1" --model "$C2" \
    --data "$WORK/tune-all.jsonl" --threads 1 --jobs 2 --json "$OUT/$M-tune-wild.json" --markdown "$OUT/$M-tune-wild.md"
$PY "$HERE/join_reports.py" "$OUT/$M-tune-base.json" "$OUT/$M-tune-wild.json" --out "$OUT/$M-tune-all.json"
$PY "$HERE/builds_choose.py" "$OUT/$M-tune-all.json" "$M" --base "$B1" "$B2" --candidate "$C1" "$C2" \
    | tee "$OUT/$M-tune-choice.txt"
$PY "$HERE/by_condition.py" "$OUT/$M-tune-all.json" > "$OUT/$M-tune-conditions.md"
grep -q "^chosen" "$OUT/$M-tune-choice.txt" || exit 0
bash "$HERE/wide-builds.sh" "$WORK" "$WIDE" "$M" wild wild1 wild2
