#!/bin/bash
# The issue-4 accuracy table: every built-in recipe vs fp32, per model, on 225 clips of the
# project's robustness eval set (calibration on the disjoint calib set), then on vitw8.
set -e
cd "$(dirname "$0")/../.."
[ -f runs/data/wild-eval/eval-225.jsonl ] || bash benchmarks/quantization/eval-225.sh

R="int8 rtn-int4-g64 gptq-int4-g64 gptq-int4-g64-emb8 awq-int4-g64 mixed-8attn-4mlp nvfp4-awq-lite mxfp4"
for M in whisper-tiny.en whisper-base; do
  specs="--model $M"
  for r in $R; do specs="$specs --model $M@$r"; done
  specs="$specs --model faster-whisper:$M:int8"
  for D in eval-225 vitw8; do
    [ -f runs/issue4/$M-$D.json ] && continue  # done (rerun after a crash)
    data=runs/data/wild-eval/eval-225.jsonl; [ $D = vitw8 ] && data=../shared/data/vitw8/manifest.jsonl
    .venv/bin/asrquant bench $specs --data $data --calib runs/data/wild-calib/manifest.jsonl \
      --threads 1 --jobs 2 --json runs/issue4/$M-$D.json --markdown runs/issue4/$M-$D.md --plot runs/issue4/$M-$D.png
  done
done
