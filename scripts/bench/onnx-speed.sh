#!/bin/bash
# The issue-5 speed run: quiet machine, 2 threads, greedy, interleaved repeats (median RTF).
set -e
cd "$(dirname "$0")/../.."
M=whisper-base; O=runs/issue5/$M-onnx
[ -f runs/issue5/$M-speed.json ] || .venv/bin/asrquant bench --model $O --model $O@gptq-emb8 --model $O@gptq-emb8-a4 \
  --model $O@mixed --model $O@ort-default-a4 --model $O@ort-k_quant-a4 --model $O@ort-hqq \
  --model faster-whisper:$M:int8 --model faster-whisper:$M:float32 \
  --data ../shared/data/vitw8/manifest.jsonl --data ../shared/data/dev/manifest.jsonl --repeat 3 --threads 2 \
  --json runs/issue5/$M-speed.json --markdown runs/issue5/$M-speed.md
M=whisper-tiny.en; O=runs/issue5/$M-onnx
[ -f runs/issue5/$M-speed.json ] || .venv/bin/asrquant bench --model $O --model $O@gptq-emb8 --model $O@gptq-emb8-a4 \
  --model $O@mixed --model $O@ort-default-a4 --model faster-whisper:$M:int8 \
  --data ../shared/data/vitw8/manifest.jsonl --data ../shared/data/dev/manifest.jsonl --repeat 3 --threads 2 \
  --json runs/issue5/$M-speed.json --markdown runs/issue5/$M-speed.md
