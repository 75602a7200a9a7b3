#!/bin/bash
# The issue-5 artifacts: per model, our fp32 export and variants from the models the issue-4
# run quantized (calibrated on runs/data/wild-calib), plus onnxruntime's own quantizer applied to
# the fp32 export with the same calibration audio. Run benchmarks/quantization/recipes.sh first (it quantizes
# and caches the models these variants are exported from).
set -e
cd "$(dirname "$0")/../.."
CALIB=runs/data/wild-calib/manifest.jsonl
for M in whisper-tiny.en whisper-base; do
  O=runs/issue5/$M-onnx
  [ -f $O/manifest.json ] || .venv/bin/asrquant export $M --out $O
  q() { ls -td ~/.cache/asrquant/quantized/$M--$1-* | grep -E -- "--$1-[0-9a-f]{16}$" | head -1; }
  has() { python3 -c "import json,sys; sys.exit('$1' not in json.load(open('$O/manifest.json'))['variants'])"; }
  has gptq-emb8 || .venv/bin/asrquant export "$(q gptq-int4-g64-emb8)" --out $O --variant gptq-emb8
  has gptq-emb8-a4 || .venv/bin/asrquant export "$(q gptq-int4-g64-emb8)" --out $O --variant gptq-emb8-a4 --accuracy-level 4
  has mixed || .venv/bin/asrquant export "$(q mixed-8attn-4mlp)" --out $O --variant mixed
  # int8 compute in the encoder (per-row QuantizeLinear + MatMulIntegerToFloat; a recipe's 4-bit
  # codes stored as such, expanded at load), float remainder in float16; the 4-bit table
  has fp32-i8 || .venv/bin/asrquant export $M --out $O --variant fp32-i8 --compute int8
  has gptq-emb8-i8-fp16 || .venv/bin/asrquant export "$(q gptq-int4-g64-emb8)" --out $O --variant gptq-emb8-i8-fp16 --compute int8 --fp16
  E4=runs/issue5/$M-gptq-emb4
  [ -f $E4/manifest.json ] || .venv/bin/asrquant quantize $M --recipe gptq-int4-g64-emb4 --calib $CALIB --out $E4 --threads 2
  has gptq-emb4-fp16 || .venv/bin/asrquant export $E4 --out $O --variant gptq-emb4-fp16 --fp16
  has gptq-emb4-i8-fp16 || .venv/bin/asrquant export $E4 --out $O --variant gptq-emb4-i8-fp16 --compute int8 --fp16
  for A in default k_quant; do
    has ort-$A-a4 || .venv/bin/python -m asrquant.export.onnx.ort_quantizer $O --variant ort-$A-a4 --algorithm $A --accuracy-level 4
  done
  has ort-hqq || .venv/bin/python -m asrquant.export.onnx.ort_quantizer $O --variant ort-hqq --algorithm hqq  # sets no accuracy_level
done
