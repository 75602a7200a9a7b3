#!/usr/bin/env bash
# Issue 19: the campaign's candidates read again on fresh tuning clips (fresh_set.py: the tuning
# sentences, seed 9, 384 clips). Every candidate since the built-in refined recipe was judged on
# tune-all.jsonl, the clips that recipe was chosen on, so its margin there may be partly the choice.
# The rule, fixed before the run: one bench of the fresh clips, fp32 first, then the built-in
# recipe's two builds (`dwqb` at 1 thread, `builtin-dwq` / `dwqc` at 2) and every earlier
# candidate's builds already on disk, greedy, one thread per row, two rows at once; each candidate
# judged by builds_choose.py against the built-in builds, as on tune-all.jsonl. The figures it
# gives: each candidate's margin on fresh clips beside its margin on tune-all.jsonl. A candidate
# chosen here on whisper-tiny.en is the next candidate for whisper-base (whose builds of `greedy`,
# `lr0001` and `wild` are benched here too); nothing is adopted from this bench alone.
#
#   bash benchmarks/refinement/fresh-tune.sh WORK MODEL
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: fresh-tune.sh WORK MODEL}
M=${2:?usage: fresh-tune.sh WORK MODEL}
PY=${PYTHON:-python}
OUT=$HERE/results/fresh
source "$HERE/campaign-lib.sh"
BASE2=$(base2)
case $M in  # the earlier candidates' builds on disk (tags without the build number)
  whisper-base) CANDS="greedyt lr0001t wild" ;;
  whisper-tiny.en) CANDS="greedyt roundt biast mlp32t pseudot b4t wild" ;;
esac
mkdir -p "$OUT"
$PY -c "from asrquant.cpu import describe_cpu; print(describe_cpu())" > "$OUT/cpu.txt"
SET=$($PY "$HERE/fresh_set.py" "$WORK")
MODELS=(--model "$M" --model "$WORK/$M-cpu-dwqb" --model "$WORK/$M-cpu-$BASE2")
for c in $CANDS; do MODELS+=(--model "$WORK/$M-cpu-${c}1" --model "$WORK/$M-cpu-${c}2"); done
$PY "$HERE/complete.py" "$OUT/$M-fresh.json" || { uptime > "$OUT/$M.load.txt"
  $PY -m asrquant.cli bench "${MODELS[@]}" --data "$SET" --threads 1 --jobs 2 --json "$OUT/$M-fresh.json" \
      --markdown "$OUT/$M-fresh.md"
  uptime >> "$OUT/$M.load.txt"; }
for c in $CANDS; do
  echo "## ${c%t}"
  $PY "$HERE/builds_choose.py" "$OUT/$M-fresh.json" "$M" --base "$WORK/$M-cpu-dwqb" "$WORK/$M-cpu-$BASE2" \
      --candidate "$WORK/$M-cpu-${c}1" "$WORK/$M-cpu-${c}2"
done | tee "$OUT/$M-fresh-choice.txt"
$PY "$HERE/by_condition.py" "$OUT/$M-fresh.json" > "$OUT/$M-fresh-conditions.md"
