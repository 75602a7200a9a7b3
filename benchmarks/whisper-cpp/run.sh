#!/usr/bin/env bash
# whisper.cpp beside our exports: the files, an accuracy run and a speed run per model.
#
#   bash benchmarks/whisper-cpp/run.sh OUT_DIR [MODEL ...]      (default: whisper-tiny.en)
#
# Per MODEL, into OUT_DIR: whisper.cpp's float16 file, ggml's own round to nearest q4_0 and q5_0
# (what whisper.cpp's quantize tool writes), our GPTQ-calibrated q4_0 (recipe ggml-q4_0-gptq)
# and our int4 ONNX artifact (gptq-int4-g64-enc32-emb4), both calibrated on ../shared/data/dev.
# Then, greedy on 2 threads:
#   accuracy: the whisper.cpp rows (float16 first: the baseline of the paired intervals) and
#             faster-whisper int8 on vitw8 + the default robustness set (`asrquant data default`:
#             synthetic TTS speech, clean and with Voices-in-the-Wild degradations); never the
#             calibration clips; one thread per row and all rows at once (an accuracy table:
#             whisper.cpp's threads spin while they wait for each other, which on a busy shared
#             machine costs it several times its work)
#   speed:    every row on vitw8 + dev, --repeat 3 interleaved
# and copies the small reports beside this script (MODEL-accuracy.{json,md}, MODEL-speed.{json,md}).
set -euo pipefail
OUT=$(realpath -m "$1"); shift
MODELS=("${@:-whisper-tiny.en}")
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DATA=$(realpath "$ROOT/../shared/data")
PY=${PY:-"$ROOT/.venv/bin/python"}
export PYTHONPATH="$ROOT/src"
CALIB="$DATA/dev/manifest.jsonl"
cli() { "$PY" -m asrquant.cli "$@"; }
SYNTH="$(cli data default | tail -1)/manifest.jsonl"   # the default robustness set (built once, cached)
mkdir -p "$OUT"
lscpu | grep -E "Model name|^CPU\(s\)" > "$OUT/lscpu.txt"
for model in "${MODELS[@]}"; do
    m="$OUT/$model"
    [ -d "$m-f16" ] || cli export "$model" --format ggml --out "$m-f16" --quiet
    for t in q4_0 q5_0; do
        [ -d "$m-$t-rtn" ] || cli export "$model" --format ggml --ggml-type $t --out "$m-$t-rtn" --quiet
    done
    [ -d "$m-q4_0-gptq" ] || cli export "$model" --format ggml --recipe ggml-q4_0-gptq --calib "$CALIB" \
        --out "$m-q4_0-gptq" --quiet
    [ -d "$m-onnx-int4" ] || cli export "$model" --recipe gptq-int4-g64-enc32-emb4 --calib "$CALIB" \
        --out "$m-onnx-int4" --quiet
    cpp=(--model "whisper.cpp:$m-f16" --model "whisper.cpp:$m-q4_0-rtn" --model "whisper.cpp:$m-q5_0-rtn"
         --model "whisper.cpp:$m-q4_0-gptq")
    cli bench "${cpp[@]}" --model "faster-whisper:$model:int8" \
        --data "$DATA/vitw8/manifest.jsonl" --data "$SYNTH" --beam 1 --threads 1 --jobs 5 \
        --json "$HERE/$model-accuracy.json" --markdown "$HERE/$model-accuracy.md"
    cli bench "${cpp[@]}" --model "faster-whisper:$model:int8" --model "$m-onnx-int4" \
        --data "$DATA/vitw8/manifest.jsonl" --data "$CALIB" --beam 1 --threads 2 --repeat 3 \
        --json "$HERE/$model-speed.json" --markdown "$HERE/$model-speed.md"
done
cp "$OUT/lscpu.txt" "$HERE/lscpu.txt"
echo "done: $OUT"
