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
case $M in
  whisper-base) BASE2=dwqc ;;
  whisper-tiny.en) BASE2=builtin-dwq ;;
  *) echo "gptaq-start.sh: no base builds for $M" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
Q=$WORK/$M-q-gptaq0 C=$WORK/$M-cpu-gptaq0
[ -f "$Q/manifest.json" ] || { uptime > "$OUT/$M-gptaq0.load.txt"
  /usr/bin/time -v $PY -m asrquant.cli quantize "$M" --recipe "$HERE/recipes/gptaq-start.toml" \
      --calib "$($PY -m asrquant.cli data default --calib-pool)" --out "$Q" --threads 2 --verbose --quiet \
      > "$OUT/$M-q-gptaq0.md" 2> "$OUT/$M-q-gptaq0.time.txt"
  uptime >> "$OUT/$M-gptaq0.load.txt"; }
[ -f "$C/manifest.json" ] || $PY -m asrquant.cli export "$Q" --compute int8 --fp16 --attention int8 --out "$C" --quiet
$PY "$HERE/complete.py" "$OUT/$M-start.json" || $PY -m asrquant.cli bench --model "$C" --data "$WORK/tune-fresh.jsonl" \
    --threads 1 --json "$OUT/$M-start.json" --markdown "$OUT/$M-start.md"
$PY "$HERE/join_reports.py" "$OUT/$M-tune-all.json" "$OUT/$M-start.json" --out "$OUT/$M-start-all.json"
{ echo "## against the built-in recipe"
  $PY "$HERE/builds_choose.py" "$OUT/$M-start-all.json" "$M" --base "$WORK/$M-cpu-dwqb" "$WORK/$M-cpu-$BASE2" --candidate "$C"
  echo "## against gptaq (the same start, refined): reported"
  $PY "$HERE/builds_choose.py" "$OUT/$M-start-all.json" "$M" --base "$WORK/$M-cpu-gptaqt1" "$WORK/$M-cpu-gptaqt2" \
      --candidate "$C"; } | tee "$OUT/$M-start-choice.txt"
