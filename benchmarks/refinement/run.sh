#!/usr/bin/env bash
# GPTQ alone vs GPTQ + DWQ (block level) vs GPTQ + DWQ (end to end) on one model, torch fake-quant.
#   calibration: the demo's default calibration set (32 calibration sentences, seed 0; 32 of its 64 clips)
#   reporting:   40 evaluation sentences never used for a choice (eval sentences 40-79, seed 1),
#                each clean + one Voices-in-the-Wild condition (80 clips)
# usage: benchmarks/refinement/run.sh [MODEL] [OUT]     (from the repository root; PY = the python)
#   NICE="nice -n 19": prefix of the heavy commands (a machine shared with a timing benchmark)
#   ONLY="gptq dwq-block": the quantizations to make and bench (default all three), so the most
#   valuable ones can be measured first; the bench's report is named after them (report-gptq+dwq-block.md)
#   NOBENCH=1: quantize only
set -euo pipefail
M=${1:-whisper-tiny.en}
OUT=${2:-runs/refinement/$M}
PY=${PY:-python}
NICE=${NICE:-}
ONLY=${ONLY:-gptq dwq-block dwq-e2e}
mkdir -p "$OUT"
read -r CALIB REPORT < <($PY "$(dirname "$0")/../tools/sets.py")  # the shared calibration and reporting sets
echo "calib $CALIB"; echo "report $REPORT"
{ lscpu | grep -E "Model name"; nproc; lscpu | grep -o -E "avx512_vnni|avx512f|amx_[a-z0-9]+|avx2" | sort -u | tr '\n' ' '; echo; } \
    > "$OUT/cpu.txt"
R=benchmarks/refinement/recipes
quantize() {  # name recipe; the load average before and after beside the times (a shared machine)
  [ -f "$OUT/q-$1/manifest.json" ] && return 0
  uptime > "$OUT/q-$1.load"
  $NICE /usr/bin/time -v $PY -m asrquant.cli quantize "$M" --recipe "$2" --calib "$CALIB" --out "$OUT/q-$1" \
      --threads 2 --verbose --quiet > "$OUT/q-$1.md" 2> "$OUT/q-$1.time"
  uptime >> "$OUT/q-$1.load"
}
declare -A RECIPE=([gptq]=gptq-int4-g64-enc32-emb4 [dwq-block]=$R/gptq-int4-g64-enc32-emb4-dwq-block.toml
                   [dwq-e2e]=$R/gptq-int4-g64-enc32-emb4-dwq-e2e.toml)
# One after another when PARALLEL is unset, so each time is its own (CPU seconds are given too).
for q in $ONLY; do
  if [ -n "${PARALLEL:-}" ]; then quantize "$q" "${RECIPE[$q]}" & else quantize "$q" "${RECIPE[$q]}"; fi
done
wait
grep -E "Elapsed|Maximum resident|User time|System time" "$OUT"/q-*.time
[ -n "${NOBENCH:-}" ] && exit 0  # NOBENCH=1: quantize only (bench later, several together)
MODELS=(); for q in $ONLY; do MODELS+=(--model "$OUT/q-$q"); done
NAME=report-$(echo $ONLY | tr ' ' '+')
uptime > "$OUT/$NAME.load"
$NICE $PY -m asrquant.cli bench --model "$M" "${MODELS[@]}" \
    --threads 2 --data "$REPORT" --json "$OUT/$NAME.json" --markdown "$OUT/$NAME.md"
uptime >> "$OUT/$NAME.load"
