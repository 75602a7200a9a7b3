#!/bin/bash
# The issue-5 speed run: quiet machine, 2 threads, greedy, interleaved repeats (median RTF).
# Variants (benchmarks/onnx-export/onnx-export.sh): gptq-emb8 = gptq-int4-g64-emb8 as stored (bit-exact);
# -i8 = --compute int8 (encoder Linears int8 GEMMs); -fp16 = float remainder stored in float16;
# gptq-emb4 = gptq-int4-g64-emb4 (4-bit token table).
set -e
cd "$(dirname "$0")/../.."
DATA="--data ../shared/data/vitw8/manifest.jsonl --data ../shared/data/dev/manifest.jsonl"
M=whisper-base; O=runs/issue5/$M-onnx
[ -f runs/issue5/$M-speed.json ] || .venv/bin/asrquant bench --model $O --model $O@gptq-emb8 \
  --model $O@gptq-emb8-i8-fp16 --model $O@gptq-emb4-fp16 --model $O@gptq-emb4-i8-fp16 --model $O@fp32-i8 \
  --model $O@mixed --model $O@ort-default-a4 --model $O@ort-k_quant-a4 --model $O@ort-hqq \
  --model faster-whisper:$M:int8 --model faster-whisper:$M:float32 $DATA --repeat 3 --threads 2 \
  --json runs/issue5/$M-speed.json --markdown runs/issue5/$M-speed.md
M=whisper-tiny.en; O=runs/issue5/$M-onnx
[ -f runs/issue5/$M-speed.json ] || .venv/bin/asrquant bench --model $O --model $O@gptq-emb8 \
  --model $O@gptq-emb8-i8-fp16 --model $O@gptq-emb4-fp16 --model $O@gptq-emb4-i8-fp16 \
  --model $O@mixed --model $O@ort-default-a4 --model faster-whisper:$M:int8 $DATA --repeat 3 --threads 2 \
  --json runs/issue5/$M-speed.json --markdown runs/issue5/$M-speed.md
