#!/usr/bin/env bash
# Robustness measurements: a 1-hour clip through `transcribe` (torch and ONNX), the bench's
# memory on three 10-minute clips, and a 60-clip bench with one broken model and one broken clip.
#
#   bash benchmarks/robustness/run.sh WORK_DIR        (WORK_DIR outside the repository: ~1.3 GB)
#
# Peak RSS by GNU time (-v); the bench's own table gives each worker's peak RSS.
set -euo pipefail
WORK=$(realpath -m "$1")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/benchmarks/robustness"
PY="${PY:-$ROOT/.venv/bin/python}"
export PYTHONPATH="$ROOT/src"
cli() { "$PY" -m asrquant.cli "$@"; }
mkdir -p "$WORK"
lscpu | grep -E "Model name" > "$HERE/cpu.txt"
lscpu | grep -o -w -E "avx2|avx512_vnni|amx_tile" | sort -u | tr '\n' ' ' >> "$HERE/cpu.txt"; echo >> "$HERE/cpu.txt"
[ -d "$WORK/wild" ] || cli data wild --from "$ROOT/../shared/data/dev/manifest.jsonl" --out "$WORK/wild" \
    --conditions noise,echo,far_field --no-clean --quiet
[ -f "$WORK/bench60.jsonl" ] || "$PY" "$HERE/make_inputs.py" "$WORK" "$WORK/wild"
[ -d "$WORK/tiny-onnx" ] || cli export whisper-tiny.en --out "$WORK/tiny-onnx" --quiet
# The hour beside one 30 s clip: what the hour adds is its samples (16 kHz float32: 230 MB), not a
# working set that grows window by window.
CLIP=$(ls "$ROOT"/../shared/data/vitw8/*.wav | head -1)
for engine in whisper-tiny.en "$WORK/tiny-onnx"; do
    name=$(basename "$engine")
    for what in clip long; do
        audio=$([ $what = long ] && echo "$WORK/long.wav" || echo "$CLIP")
        /usr/bin/time -v -o "$HERE/$what-$name.time" "$PY" -m asrquant.cli transcribe "$engine" "$audio" \
            --threads 2 > "$WORK/$what-$name.txt"
        grep -E "Maximum resident|Elapsed" "$HERE/$what-$name.time"
    done
done
cli bench --model whisper-tiny.en --data "$WORK/tenmin.jsonl" --threads 2 --json "$HERE/tenmin.json" >/dev/null
cli bench --model whisper-tiny.en --model "$WORK/tiny-onnx" --model faster-whisper:whisper-tiny.en:int8 \
    --model "$WORK/broken-model" --data "$WORK/bench60.jsonl" --threads 2 \
    --json "$HERE/bench60.json" --markdown "$HERE/bench60.md" >/dev/null || echo "bench exit $? (1: a model failed)"
