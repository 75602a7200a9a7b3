#!/usr/bin/env bash
# whisper.cpp beside our exports: the files, an accuracy run and a speed run per model.
#
#   bash benchmarks/whisper-cpp/run.sh OUT_DIR [MODEL ...]      (default: whisper-base)
#
# Per MODEL, into OUT_DIR: whisper.cpp's float16 file, ggml's own round to nearest q4_0 and q5_0
# (what whisper.cpp's quantize tool writes), our GPTQ-calibrated q4_0 (recipe ggml-q4_0-gptq) and
# the `cpu` target's ONNX artifact, both calibrated on the default calibration set (calibration
# sentences only). Then, greedy:
#   accuracy: the whisper.cpp rows (float16 first: the baseline of the paired intervals), torch
#             fp32, faster-whisper int8 and our ONNX artifact on the reporting set (eval sentences
#             40-79, seed 1: clean + one Voices-in-the-Wild condition each, 80 clips, never used
#             for a choice) + vitw8 + dev (real speech); one thread per row, two rows at a time
#             (whisper.cpp's threads spin while they wait for each other: on a busy machine more
#             threads than cores costs it several times its work)
#   speed:    whisper.cpp float16 / q4_0 / q5_0, faster-whisper int8 and our ONNX artifact on
#             vitw8 + dev, 2 threads, --repeat 3 interleaved, one row at a time (a quiet machine)
# and copies the small reports beside this script (MODEL-accuracy.{json,md}, MODEL-speed.{json,md}).
# SKIP_ACCURACY=1 or SKIP_SPEED=1 leaves one of the two runs out.
set -euo pipefail
OUT=$(realpath -m "$1"); shift
MODELS=("${@:-whisper-base}")
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DATA=$(realpath "$ROOT/../shared/data")
PY=${PY:-"$ROOT/.venv/bin/python"}
export PYTHONPATH="$ROOT/src"
cli() { "$PY" -m asrquant.cli "$@"; }
read -r CALIB REPORT < <("$PY" "$HERE/../tools/sets.py")  # the shared calibration and reporting sets
mkdir -p "$OUT"
{ lscpu | grep -E "Model name|^CPU\(s\)"; lscpu | grep -o -E "avx512_vnni|avx_vnni|amx_int8|avx2" | sort -u | tr '\n' ' '; echo; } \
    > "$OUT/lscpu.txt"
for model in "${MODELS[@]}"; do
    m="$OUT/$model"
    [ -d "$m-f16" ] || cli export "$model" --format ggml --out "$m-f16" --quiet
    for t in q4_0 q5_0; do
        [ -d "$m-$t-rtn" ] || cli export "$model" --format ggml --ggml-type $t --out "$m-$t-rtn" --quiet
    done
    [ -d "$m-q4_0-gptq" ] || cli export "$model" --format ggml --recipe ggml-q4_0-gptq --calib "$CALIB" \
        --out "$m-q4_0-gptq" --quiet
    [ -d "$m-cpu" ] || cli export "$model" --target cpu --calib "$CALIB" --out "$m-cpu" --quiet
    cpp=(--model "whisper.cpp:$m-f16" --model "whisper.cpp:$m-q4_0-rtn" --model "whisper.cpp:$m-q5_0-rtn"
         --model "whisper.cpp:$m-q4_0-gptq")
    if [ -z "${SKIP_ACCURACY:-}" ]; then
        cli bench "${cpp[@]}" --model "$model" --model "faster-whisper:$model:int8" --model "$m-cpu" \
            --data "$REPORT" --data "$DATA/vitw8/manifest.jsonl" --data "$DATA/dev/manifest.jsonl" \
            --beam 1 --threads 1 --jobs 2 --json "$HERE/$model-accuracy.json" --markdown "$HERE/$model-accuracy.md"
    fi
    if [ -z "${SKIP_SPEED:-}" ]; then
        uptime > "$HERE/$model-speed-loadavg.txt"
        cli bench --model "whisper.cpp:$m-f16" --model "whisper.cpp:$m-q4_0-gptq" --model "whisper.cpp:$m-q5_0-rtn" \
            --model "faster-whisper:$model:int8" --model "$m-cpu" \
            --data "$DATA/vitw8/manifest.jsonl" --data "$DATA/dev/manifest.jsonl" --beam 1 --threads 2 --repeat 3 \
            --json "$HERE/$model-speed.json" --markdown "$HERE/$model-speed.md"
        uptime >> "$HERE/$model-speed-loadavg.txt"
    fi
done
cp "$OUT/lscpu.txt" "$HERE/lscpu.txt"
echo "done: $OUT"
