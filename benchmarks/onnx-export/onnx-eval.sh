#!/bin/bash
# The issue-5 accuracy run on the robustness eval set (models run 2 at a time: not the speed figures).
set -e
cd "$(dirname "$0")/../.."
M=whisper-base; O=runs/issue5/$M-onnx
.venv/bin/asrquant bench --model $O --model $O@fp32-i8 --model $O@gptq-emb8 --model $O@gptq-emb8-i8-fp16 \
  --model $O@gptq-emb4-fp16 --model $O@gptq-emb4-i8-fp16 --model $O@mixed \
  --model $O@ort-default-a4 --model $O@ort-k_quant-a4 --model $O@ort-hqq --model faster-whisper:$M:int8 \
  --data runs/data/wild-eval/eval-225.jsonl --threads 1 --jobs 2 \
  --json runs/issue5/$M-eval-225.json --markdown runs/issue5/$M-eval-225.md --plot runs/issue5/$M-eval-225.png
# The -i8 variants again, after their 4-bit codes moved to the encoder_weights graph (expanded at
# load; the int8 scales now float32 instead of float16): the same rows, beside the same fp32 baseline.
.venv/bin/asrquant bench --model $O --model $O@gptq-emb8-i8-fp16 --model $O@gptq-emb4-i8-fp16 \
  --data runs/data/wild-eval/eval-225.jsonl --threads 1 --jobs 2 \
  --json runs/issue5/$M-eval-225-i8.json --markdown runs/issue5/$M-eval-225-i8.md
