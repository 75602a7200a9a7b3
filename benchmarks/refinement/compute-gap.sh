#!/usr/bin/env bash
# Issue 19, item 3 on more words: how far is each int4 artifact from float on the 384 tuning clips
# (5202 words), and how much of it is the int8 compute of the `cpu` target? No choice is made here.
# One bench run per model on calib-size.sh's tuning manifest: torch fp32 first, then q32 (the `cpu`
# target's recipe on the default calibration set) exported with float compute (--fp16: MatMulNBits
# on float activations, the fake-quant numbers); paired clip by clip with calib-size.sh's bench of
# the same q32 as the `cpu` artifact (int8 compute, integer attention scores) by merge.py
# (greedy decoding is deterministic, so runs pair). Those clips chose the `cpu` target's
# --attention int8 (onnx-speed/attention_choice.sh) and calib-size.sh's rule: the float-compute
# row's delta is held out, the `cpu` row's is read knowing that.
#
#   bash benchmarks/refinement/compute-gap.sh WORK        (after calib-size.sh WORK)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: compute-gap.sh WORK}
PY=${PYTHON:-python}
OUT=$HERE/results/calib-size
for m in whisper-base whisper-tiny.en; do
  [ -f "$WORK/$m-float32/manifest.json" ] || $PY -m asrquant.cli export "$WORK/$m-q32" --fp16 --out "$WORK/$m-float32" --quiet
  $PY "$HERE/complete.py" "$OUT/$m-tune-float.json" || $PY -m asrquant.cli bench --model "$m" --model "$WORK/$m-float32" \
      --data "$WORK/tune-all.jsonl" --threads 1 --jobs 2 --json "$OUT/$m-tune-float.json" --markdown "$OUT/$m-tune-float.md"
  $PY "$HERE/merge.py" "$OUT/$m-tune-float.json" "$OUT/$m-tune.json" --out "$OUT/$m-tune-merged.md"
  $PY "$HERE/join_reports.py" "$OUT/$m-tune-float.json" "$OUT/$m-tune.json" --out "$OUT/$m-tune-all.json"  # for paired.py
  { for row in "$WORK/$m-float32" "$WORK/$m-cpu32" "$WORK/$m-cpuall"; do
      echo "$row vs fp32:"; $PY "$HERE/../whisper-cpp/paired.py" "$OUT/$m-tune-all.json" "$m" "$row"; done
    echo "cpu32 (int8 compute) vs float32 (float compute):"
    $PY "$HERE/../whisper-cpp/paired.py" "$OUT/$m-tune-all.json" "$WORK/$m-float32" "$WORK/$m-cpu32"
  } | tee "$OUT/$m-tune-gap.txt"
done
