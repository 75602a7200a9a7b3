#!/usr/bin/env bash
# Issue 19, item 3: which step size (lr) of the end-to-end DWQ through the int8 chain, chosen on
# tuning clips only. Candidates: lr 0.00025, 0.0005 (the earlier run's, from calibration-clip check
# trajectories), 0.001 of recipes/gptq-int4-g64-enc32-emb4-dwq-e2e-int8.toml, each as the `cpu`
# artifact (export --compute int8 --fp16), against GPTQ alone (the same recipe without refine).
# The rule, fixed before the run: on the tuning set (eval sentences 80-119, seed 2, 80 clips; the
# tuning set of benchmarks/int8-choice), one bench run of all four rows, greedy, one thread per row,
# the candidate with the fewest errors is reported on the reporting set (eval 40-79, seed 1) only
# if it has fewer errors than GPTQ alone on the tuning set and no more failures; otherwise GPTQ
# alone stays and nothing is reported as chosen.
#
#   bash benchmarks/refinement/lr-choice.sh WORK GPTQ_CPU LR_0.0005_CPU
#
# WORK gets q-lrX-e2e-int8 / cpu-lrX-e2e-int8 for X in 0.00025 0.001 (quantized on the default
# calibration set, one thread each); GPTQ_CPU and LR_0.0005_CPU are the earlier run's artifacts.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: lr-choice.sh WORK GPTQ_CPU LR_0.0005_CPU}
GPTQ=${2:?}
LR5=${3:?}
PY=${PYTHON:-python}
read -r CALIB REPORT < <($PY "$HERE/../tools/sets.py")
read -r TUNE _ < <($PY "$HERE/../onnx-speed/tune_sets.py")
for lr in 0.00025 0.001; do
  r="$WORK/lr$lr-e2e-int8.toml"  # the committed recipe with lr set in its three rules
  sed "s/refine_options = { level = \"e2e\", activations = \"int8\" }/refine_options = { level = \"e2e\", lr = $lr, activations = \"int8\" }/; s/refine_options = { level = \"e2e\" }/refine_options = { level = \"e2e\", lr = $lr }/" \
      "$HERE/recipes/gptq-int4-g64-enc32-emb4-dwq-e2e-int8.toml" > "$r"
  [ -f "$WORK/q-lr$lr-e2e-int8/manifest.json" ] || OMP_NUM_THREADS=1 $PY -m asrquant.cli quantize whisper-base \
      --recipe "$r" --calib "$CALIB" --out "$WORK/q-lr$lr-e2e-int8" --threads 1 --verbose --quiet \
      > "$WORK/q-lr$lr-e2e-int8.md" &
done
wait
for lr in 0.00025 0.001; do
  [ -f "$WORK/cpu-lr$lr-e2e-int8/manifest.json" ] || $PY -m asrquant.cli export "$WORK/q-lr$lr-e2e-int8" \
      --compute int8 --fp16 --out "$WORK/cpu-lr$lr-e2e-int8" --quiet
done
OUT=$HERE/results/whisper-base/int8-loop
$PY -m asrquant.cli bench --model "$GPTQ" --model "$WORK/cpu-lr0.00025-e2e-int8" --model "$LR5" \
    --model "$WORK/cpu-lr0.001-e2e-int8" --data "$TUNE" --threads 1 --jobs 2 \
    --json "$OUT/lr-choice-tune.json" --markdown "$OUT/lr-choice-tune.md"
for c in "$WORK/cpu-lr0.00025-e2e-int8" "$LR5" "$WORK/cpu-lr0.001-e2e-int8"; do
  echo "$c:"; $PY "$HERE/../whisper-cpp/paired.py" "$OUT/lr-choice-tune.json" "$GPTQ" "$c"
done | tee "$OUT/lr-choice-tune-paired.txt"
