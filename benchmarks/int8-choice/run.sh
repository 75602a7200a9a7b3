#!/usr/bin/env bash
# Which encoder Linears of the `cpu` target's whisper-base artifact should run the int8 chain?
#
#   bash benchmarks/int8-choice/run.sh OUT_DIR
#
# 1. the target's recipe (gptq-int4-g64-enc32-emb4) on the calibration set, once (asrquant quantize);
# 2. every encoder-graph Linear's int8 cost measured on 16 calibration clips and the artifact
#    exported with the N costliest on float compute, N in COUNTS (export_variants.py: what
#    `asrquant export whisper-base --target cpu --calib CALIB --int8-skip N` writes), and the same
#    recipe with float compute (no int8 anywhere);
# 3. N chosen on the tuning set (eval sentences 80-119, seed 2; sets.py) by word errors (choose.py; the
#    skip-N rows only, skip-0 first: the paired intervals' baseline);
# 4. the reporting set (eval sentences 40-79, seed 1, never used for a choice): torch fp32 first, the
#    artifact as it ships (skip-0), skip-N, skip-16 (the largest N measured), float compute; greedy,
#    2 threads; paired intervals;
# 5. one 30 s encoder call of each, 1 thread, interleaved (encoder_time.py).
# Heavy steps run under nice -n 19 (a shared machine). Small reports are written beside this script.
set -euo pipefail
OUT=$(realpath -m "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PY:-"$ROOT/.venv/bin/python"}
export PYTHONPATH="$ROOT/src"
run() { nice -n 19 "$PY" "$@"; }
cli() { run -m asrquant.cli "$@"; }
COUNTS=(0 1 2 4 8 16)
read -r CALIB TUNE REPORT < <(run "$HERE/sets.py")
mkdir -p "$OUT"
[ -d "$OUT/base-gptq" ] || cli quantize whisper-base --recipe gptq-int4-g64-enc32-emb4 --calib "$CALIB" \
    --out "$OUT/base-gptq" --quiet
[ -f "$OUT/costs.json" ] || run "$HERE/export_variants.py" "$OUT/base-gptq" "$CALIB" "$OUT" "${COUNTS[@]}"
cp "$OUT/costs.json" "$HERE/costs.json"
[ -d "$OUT/float-compute" ] || cli export "$OUT/base-gptq" --fp16 --out "$OUT/float-compute" --quiet
models=()
for n in 0 2 4 8 16; do models+=(--model "$OUT/skip-$n"); done
[ -f "$HERE/tune.json" ] || cli bench "${models[@]}" \
    --data "$TUNE" --beam 1 --threads 2 --json "$HERE/tune.json" --markdown "$HERE/tune.md"
N=$(run "$HERE/choose.py" "$HERE/tune.json")
echo "chosen on the tuning set: N = $N"
rows=(--model whisper-base --model "$OUT/skip-0")
[ "$N" != 0 ] && rows+=(--model "$OUT/skip-$N")
[ "$N" != 16 ] && rows+=(--model "$OUT/skip-16")  # the largest N measured, not chosen: the direction on held-out clips
rows+=(--model "$OUT/float-compute")
[ -f "$HERE/report.json" ] || cli bench "${rows[@]}" --data "$REPORT" --beam 1 --threads 2 \
    --json "$HERE/report.json" --markdown "$HERE/report.md"
{
    for b in "skip-$N" skip-16 float-compute; do
        [ "$b" = skip-0 ] && continue
        echo "skip-0 -> $b:"; run "$ROOT/benchmarks/whisper-cpp/paired.py" "$HERE/report.json" "$OUT/skip-0" "$OUT/$b"
    done
    for b in skip-0 skip-16 float-compute; do
        echo "whisper-base -> $b:"; run "$ROOT/benchmarks/whisper-cpp/paired.py" "$HERE/report.json" whisper-base "$OUT/$b"
    done
} | tee "$HERE/paired.txt"
run "$HERE/encoder_time.py" "$OUT/skip-0" "$OUT/skip-$N" "$OUT/skip-16" "$OUT/float-compute" --threads 1 --repeat 9 \
    --json "$HERE/encoder-time.json"
echo "done: $OUT"
