#!/usr/bin/env bash
# Should the `cpu` target export its encoder's attention scores as integer GEMMs (--attention int8)?
# Decided on tuning clips only (tune_sets.py: 384 clips, disjoint from the reported sets), by a rule
# fixed before the run: the target takes it if, for whisper-base AND whisper-tiny.en, the paired
# WER delta (int8 scores - unfused) is at most +0.2 pp with the upper end of its 95% bootstrap
# interval (over clips) below +1.0 pp, and the int8 rows loop on no more clips than the unfused.
#
#   bash benchmarks/onnx-speed/attention_choice.sh WORK
#
# WORK holds (or gets) both models' `cpu` artifacts with an `int8s` variant, made as in the README's
# section 5: quantize with gptq-int4-g64-enc32-emb4 on the default calibration set, export
# --compute int8 --fp16, and again with --attention int8 --variant int8s.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: attention_choice.sh WORK}
PY=${PYTHON:-python}
read -r CALIB _ < <($PY "$HERE/../tools/sets.py")
read -r TUNE_A TUNE_B < <($PY "$HERE/tune_sets.py")
for model in whisper-base whisper-tiny.en; do
  A="$WORK/$model-cpu"
  if [ ! -e "$A/manifest.json" ]; then
    $PY -m asrquant.cli quantize "$model" --recipe gptq-int4-g64-enc32-emb4 --calib "$CALIB" --out "$WORK/$model-q" --quiet
    $PY -m asrquant.cli export "$WORK/$model-q" --compute int8 --fp16 --out "$A" --quiet
    $PY -m asrquant.cli export "$WORK/$model-q" --compute int8 --fp16 --attention int8 --variant int8s --out "$A" --quiet
  fi
  $PY -m asrquant.cli bench --model "$A" --model "$A@int8s" --data "$TUNE_A" --data "$TUNE_B" --threads 1 --jobs 2 \
    --json "$HERE/attention-choice-$model.json" --markdown "$HERE/attention-choice-$model.md"
  $PY "$HERE/../whisper-cpp/paired.py" "$HERE/attention-choice-$model.json" "$A" "$A@int8s" | tee "$HERE/attention-choice-$model-paired.txt"
done
