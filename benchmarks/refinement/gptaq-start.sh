#!/usr/bin/env bash
# Issue 19: `gptaq`'s start alone (recipes/gptaq-start.toml: GPTQ with float_inputs on the built-in
# pool, no refinement). A GPTQ build is the same at any thread count (tests/quant/test_calibrate.py;
# both `gptaq` builds had the same check KL before their refinement), so one build stands for all.
# The rule, fixed before the run: one bench of the fresh tuning clips for it, joined to the base
# rows there (fresh-tune.sh) and to `gptaq`'s two builds; `builds_choose.py` against the built-in
# recipe's two builds (chosen: fewer word errors, no more new failures on average), and, reported
# beside it, against `gptaq`'s two builds: whether the refinement adds anything on top of the start.
#
#   bash benchmarks/refinement/gptaq-start.sh WORK MODEL
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: gptaq-start.sh WORK MODEL}
M=${2:?usage: gptaq-start.sh WORK MODEL}
PY=${PYTHON:-python}
OUT=$HERE/results/gptaq
source "$HERE/campaign-lib.sh"
BASE2=$(base2)
mkdir -p "$OUT"
C=$WORK/$M-cpu-gptaq0
build gptaq0 2 "$HERE/recipes/gptaq-start.toml" "$($PY -m asrquant.cli data default --calib-pool)"
$PY "$HERE/complete.py" "$OUT/$M-start.json" || $PY -m asrquant.cli bench --model "$C" --data "$WORK/tune-fresh.jsonl" \
    --threads 1 --json "$OUT/$M-start.json" --markdown "$OUT/$M-start.md"
$PY "$HERE/join_reports.py" "$OUT/$M-tune-all.json" "$OUT/$M-start.json" --out "$OUT/$M-start-all.json"
{ echo "## against the built-in recipe"
  $PY "$HERE/builds_choose.py" "$OUT/$M-start-all.json" "$M" --base "$WORK/$M-cpu-dwqb" "$WORK/$M-cpu-$BASE2" --candidate "$C"
  echo "## against gptaq (the same start, refined): reported"
  $PY "$HERE/builds_choose.py" "$OUT/$M-start-all.json" "$M" --base "$WORK/$M-cpu-gptaqt1" "$WORK/$M-cpu-gptaqt2" \
      --candidate "$C"; } | tee "$OUT/$M-start-choice.txt"
