#!/usr/bin/env bash
# Issue 19: a candidate's two builds ($WORK/$M-cpu-${TAG}t1 and -t2, or $WORK/$M-cpu-BUILD1 and
# -BUILD2 where given) on the wide reporting set (1080 held-out clips, wide_set.py), one bench,
# greedy, one thread per row, two rows at once, joined to the built-in recipe's three builds there
# and fp32 (builds.sh's rows), then builds_choose.py against those three. A report, never a
# choice: two-builds.sh and wild-calib.sh run it for a candidate their tuning rule chose;
# fresh-tune.sh's leading candidate is reported here too.
#
#   bash benchmarks/refinement/wide-builds.sh WORK WIDE MODEL TAG [BUILD1 BUILD2]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
USAGE="usage: wide-builds.sh WORK WIDE MODEL TAG [BUILD1 BUILD2]"
WORK=${1:?$USAGE}
WIDE=${2:?$USAGE}
M=${3:?$USAGE}
TAG=${4:?$USAGE}
PY=${PYTHON:-python}
OUT=$HERE/results/$TAG
source "$HERE/campaign-lib.sh"
BASE2=$(base2)
C1=$WORK/$M-cpu-${5:-${TAG}t1} C2=$WORK/$M-cpu-${6:-${TAG}t2}
mkdir -p "$OUT"
$PY "$HERE/complete.py" "$OUT/$M-wide.json" || $PY -m asrquant.cli bench --model "$C1" --model "$C2" \
    --data "$($PY "$HERE/wide_set.py" "$WIDE")" --threads 1 --jobs 2 --json "$OUT/$M-wide.json" --markdown "$OUT/$M-wide.md"
$PY "$HERE/join_reports.py" "$HERE/results/builds/$M-builds-all.json" "$OUT/$M-wide.json" --out "$OUT/$M-wide-all.json"
$PY "$HERE/builds_choose.py" "$OUT/$M-wide-all.json" "$M" --base "$WORK/$M-cpu-dwq348" "$WORK/$M-cpu-dwqb" \
    "$WORK/$M-cpu-$BASE2" --candidate "$C1" "$C2" | tee "$OUT/$M-wide-builds.txt"
$PY "$HERE/by_condition.py" "$OUT/$M-wide-all.json" > "$OUT/$M-wide-conditions.md"
