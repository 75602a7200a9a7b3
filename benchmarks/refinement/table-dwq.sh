#!/usr/bin/env bash
# Issue 19: the token table refined end to end too. At 4 bits the table (the logits' weights as
# well as the lookups) held about half of whisper-base's decoder loss, and the built-in
# gptq-int4-g64-enc32-emb4-dwq leaves it at its GPTQ start. Candidate `dwqtab`
# (recipes/gptq-int4-g64-enc32-emb4-dwq-table.toml): the built-in recipe with `refine = "dwq"` on
# its [embedding] at the Linears' options, trained in the same end-to-end session. Its base `dwqb`:
# the built-in recipe quantized on the same machine, in the same run (a build on another CPU
# differs by up to ~1 pp: README, "The wide reporting set"). Both on the calibration pool the
# README gives users (`asrquant data default --calib-pool`), one thread each, at once, exported as
# the `cpu` target (--compute int8 --fp16 --attention int8).
# The rule, fixed before the run: one bench of both on the tuning clips (tune-all.jsonl, 384
# clips, 5202 words), greedy, one thread per row, two rows at once; dwqtab is chosen if it has
# fewer word errors than dwqb there and no more failures (calib_size_choose.py). Then the wide
# reporting set (wide_set.py, 1080 clips): dwqb always (another build of the built-in recipe), dwqtab
# only if chosen; both joined with the model's earlier wide rows, fp32 first (fp32 gives the same
# text on both machines, machine-check.sh): whisper-base wide-report.sh's fp32 / q32 / dwq348 /
# faster-whisper (AMD EPYC), whisper-tiny.en wide-finish.sh's fp32 / q32 / faster-whisper and
# builtin-dwq.sh's built-in recipe (this Intel machine). `PREV`: the earlier build of the built-in
# recipe that dwqb is paired with.
#
#   bash benchmarks/refinement/table-dwq.sh WORK WIDE [MODEL]   (WORK/tune-all.jsonl: calib-size.sh)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: table-dwq.sh WORK WIDE [MODEL]}
WIDE=${2:?usage: table-dwq.sh WORK WIDE [MODEL]}
M=${3:-whisper-base}
PY=${PYTHON:-python}
OUT=$HERE/results/table
W=$HERE/results/wide
case $M in
  whisper-base) EARLIER=("$W/$M-wide.json"); PREV=$WORK/$M-cpu-dwq348 ;;
  whisper-tiny.en) EARLIER=("$W/$M-wide-rest.json" "$W/$M-wide-builtin-dwq.json"); PREV=$WORK/$M-cpu-builtin-dwq ;;
  *) echo "table-dwq.sh: no earlier wide rows for $M" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
$PY -c "from asrquant.cpu import describe_cpu; print(describe_cpu())" > "$OUT/cpu.txt"
POOL=$($PY -m asrquant.cli data default --calib-pool)
quantize() {  # tag recipe
  local q="$WORK/$M-q-$1"
  [ -f "$q/manifest.json" ] || { uptime > "$OUT/$M-$1.load.txt"
    /usr/bin/time -v $PY -m asrquant.cli quantize "$M" --recipe "$2" --calib "$POOL" --out "$q" --threads 1 \
        --verbose --quiet > "$OUT/$M-q-$1.md" 2> "$OUT/$M-q-$1.time.txt"
    uptime >> "$OUT/$M-$1.load.txt"; }
  [ -f "$WORK/$M-cpu-$1/manifest.json" ] || $PY -m asrquant.cli export "$q" --compute int8 --fp16 --attention int8 \
      --out "$WORK/$M-cpu-$1" --quiet
}
quantize dwqb gptq-int4-g64-enc32-emb4-dwq &
quantize dwqtab "$HERE/recipes/gptq-int4-g64-enc32-emb4-dwq-table.toml" &
wait %1 && wait %2
B=$WORK/$M-cpu-dwqb C=$WORK/$M-cpu-dwqtab
$PY "$HERE/complete.py" "$OUT/$M-tune.json" || $PY -m asrquant.cli bench --model "$B" --model "$C" --data "$WORK/tune-all.jsonl" \
    --threads 1 --jobs 2 --json "$OUT/$M-tune.json" --markdown "$OUT/$M-tune.md"
$PY "$HERE/calib_size_choose.py" "$OUT/$M-tune.json" "$B" "$C" | tee "$OUT/$M-choice.txt"
$PY "$HERE/../whisper-cpp/paired.py" "$OUT/$M-tune.json" "$B" "$C" | tee "$OUT/$M-tune-paired.txt"
rows=(--model "$B"); grep -q "^chosen" "$OUT/$M-choice.txt" && rows+=(--model "$C")
$PY "$HERE/complete.py" "$OUT/$M-wide.json" || $PY -m asrquant.cli bench "${rows[@]}" --data "$($PY "$HERE/wide_set.py" "$WIDE")" \
    --threads 1 --jobs 2 --json "$OUT/$M-wide.json" --markdown "$OUT/$M-wide.md"
$PY "$HERE/join_reports.py" "${EARLIER[@]}" "$OUT/$M-wide.json" --out "$OUT/$M-wide-all.json"
$PY "$HERE/merge.py" "$OUT/$M-wide-all.json" --out "$OUT/$M-wide-merged.md"
$PY "$HERE/by_condition.py" "$OUT/$M-wide-all.json" | tee "$OUT/$M-wide-conditions.md"
{ echo "$(basename "$PREV") (the earlier build) -> dwqb (this run):"
  $PY "$HERE/../whisper-cpp/paired.py" "$OUT/$M-wide-all.json" "$PREV" "$B"
  if grep -q "^chosen" "$OUT/$M-choice.txt"; then
    echo "dwqb -> dwqtab:"; $PY "$HERE/../whisper-cpp/paired.py" "$OUT/$M-wide-all.json" "$B" "$C"
    echo "fp32 -> dwqtab:"; $PY "$HERE/../whisper-cpp/paired.py" "$OUT/$M-wide-all.json" "$M" "$C"
  fi
} | tee "$OUT/$M-wide-paired.txt"
