#!/usr/bin/env bash
# Should the `cpu` target hand its decoder int8 cross-attention keys (--cross-keys int8)?
# Decided on the tuning clips `--attention int8` was chosen on (tune_sets.py: 384 clips, disjoint
# from the reported sets), by the same rule, fixed before the run: the target takes it if, for
# whisper-base AND whisper-tiny.en, the paired WER delta (int8 keys - the target's version 2) is
# at most +0.2 pp with the upper end of its 95% bootstrap interval (over clips) below +1.0 pp, and
# the int8-key rows loop on no more clips than version 2's.
#
#   bash benchmarks/onnx-speed/cross_keys_choice.sh WORK
#
# WORK holds both models' `cpu` artifacts of attention_choice.sh (variant `int8s` = the target's
# version 2); this adds the variant `int8sxk`: the same quantized model exported with
# --compute int8 --fp16 --attention int8 --cross-keys int8.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: cross_keys_choice.sh WORK}
PY=${PYTHON:-python}
read -r TUNE_A TUNE_B < <($PY "$HERE/tune_sets.py")
for model in whisper-base whisper-tiny.en; do
  A="$WORK/$model-cpu"
  $PY -m asrquant.cli export "$WORK/$model-q" --compute int8 --fp16 --attention int8 --cross-keys int8 \
    --variant int8sxk --out "$A" --quiet
  $PY -m asrquant.cli bench --model "$A@int8s" --model "$A@int8sxk" --data "$TUNE_A" --data "$TUNE_B" --threads 1 \
    --jobs 2 --json "$HERE/cross-keys-choice-$model.json" --markdown "$HERE/cross-keys-choice-$model.md"
  $PY "$HERE/../whisper-cpp/paired.py" "$HERE/cross-keys-choice-$model.json" "$A@int8s" "$A@int8sxk" \
    | tee "$HERE/cross-keys-choice-$model-paired.txt"
done
