#!/usr/bin/env bash
# Issue 19: the end-to-end refinement on ten times the calibration clips. On the default set's 32
# clips (some 640 decoder positions) DWQ end to end lowered its held-out check KL by 17-19 % and
# never turned that into fewer word errors (lr-choice.sh); mlx-lm's DWQ trains on 1024 samples.
# Candidate `dwq348`: the `cpu` target's recipe on calib_pool.py's 348 clips (as `qall`), every
# Linear then refined end to end by DWQ (scales, float products), one pass over the 344 clips that
# are not check clips (steps = 344), at lr-choice.sh's lowest step size (0.00025), the best-check
# and early-stop rules of quant/refine.py as they are. Judged by candidate.sh's rule, fixed
# before the run, against `qall` (GPTQ alone on the same clips), so the rule judges the refinement
# and not the clips. MODEL (second argument, default whisper-base): whisper-tiny.en the same way,
# against its own `qall`, by the same rule, written before its run.
#
#   bash benchmarks/refinement/dwq-pool.sh WORK [MODEL]     (after calib-size.sh and calib-size-report.sh WORK)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: dwq-pool.sh WORK}
PY=${PYTHON:-python}
M=${2:-whisper-base}
sed -e 's/^clips = 32$/clips = 348/' \
    -e 's/^refine_options = { level = "e2e" }$/refine_options = { level = "e2e", steps = 344, lr = 0.00025 }/' \
    "$HERE/recipes/gptq-int4-g64-enc32-emb4-dwq-e2e.toml" > "$WORK/dwq348.toml"
[ "$(grep -c -E '^clips = 348$|steps = 344, lr = 0.00025' "$WORK/dwq348.toml")" = 3 ]
MODEL=$M BASE="$WORK/$M-cpuall" bash "$HERE/candidate.sh" "$WORK" dwq348 "$WORK/dwq348.toml" "$WORK/pool-all.jsonl"
