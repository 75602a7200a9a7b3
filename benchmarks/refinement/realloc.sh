#!/usr/bin/env bash
# Issue 19: bits moved from the encoder to the decoder and the token table, at the same budget.
# attribution.sh found whisper-base's int4 loss in the decoder blocks and the token table, none in
# the encoder (groups of 32 today). Candidate `realloc`: the `cpu` target's recipe with the encoder
# in groups of 128, the decoder's Linears and the token table in groups of 32 (still 4 bits, GPTQ,
# float16 scales, 4-bit zero points): 4.49 bits per weight, under the issue's 4.5 and 0.30 x fp16.
# The rule, committed before the run: on calib-size.sh's 384 tuning clips, as the `cpu` artifact
# (--compute int8 --fp16 --attention int8), greedy, one thread, `realloc` is chosen if it has fewer
# word errors than calib-size.sh's `q32` row there and no more failures, and if its quantization
# report says at most 4.5 bits per weight and its artifact is at most 0.30 x fp16 (43.6 MB); only then is it benched
# on the reporting clips (fp32 of calib-size-report.sh's run pairs with it by merge.py).
#
#   bash benchmarks/refinement/realloc.sh WORK        (after calib-size.sh and calib-size-report.sh WORK)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: realloc.sh WORK}
PY=${PYTHON:-python}
OUT=$HERE/results/calib-size
M=whisper-base
read -r CALIB REPORT < <($PY "$HERE/../tools/sets.py")
$PY - "$HERE/../../src/asrquant/quant/recipes/gptq-int4-g64-enc32-emb4.toml" "$WORK/realloc.toml" <<'PYEOF'
import sys
from pathlib import Path
s = Path(sys.argv[1]).read_text()
enc = 'kind = "encoder"\nformat = "int"\nbits = 4\ngroup_size = 32\n'
rest = '[[rules]]\nformat = "int"\nbits = 4\ngroup_size = 64\n'
table = '[embedding]\nmatch = "decoder.token_embedding"\nformat = "int"\nbits = 4\ngroup_size = 64\n'
assert enc in s and rest in s and table in s
s = s.replace(enc, enc.replace("32", "128")).replace(rest, rest.replace("64", "32")).replace(table, table.replace("64", "32"))
Path(sys.argv[2]).write_text(s)
PYEOF
[ -f "$WORK/$M-q-realloc/manifest.json" ] || $PY -m asrquant.cli quantize $M --recipe "$WORK/realloc.toml" --calib "$CALIB" \
    --out "$WORK/$M-q-realloc" --threads 2 --verbose --quiet > "$OUT/$M-q-realloc.md"
[ -f "$WORK/$M-cpu-realloc/manifest.json" ] || $PY -m asrquant.cli export "$WORK/$M-q-realloc" --compute int8 --fp16 \
    --attention int8 --out "$WORK/$M-cpu-realloc" --quiet
[ -f "$OUT/$M-tune-realloc.json" ] || $PY -m asrquant.cli bench --model "$WORK/$M-cpu-realloc" --data "$WORK/tune-all.jsonl" \
    --threads 1 --json "$OUT/$M-tune-realloc.json" --markdown "$OUT/$M-tune-realloc.md"
$PY "$HERE/join_reports.py" "$OUT/$M-tune.json" "$OUT/$M-tune-realloc.json" --out "$OUT/$M-tune-realloc-all.json"
verdict=$($PY "$HERE/calib_size_choose.py" "$OUT/$M-tune-realloc-all.json" "$WORK/$M-cpu32" "$WORK/$M-cpu-realloc")
bits=$(grep -o -E "[0-9.]+ bits/weight on average" "$OUT/$M-q-realloc.md" | cut -d' ' -f1)
mb=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['runs'][0]['size_bytes'] / 1e6)" "$OUT/$M-tune-realloc.json")
$PY -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 4.5 and float(sys.argv[2]) <= 43.6 else 1)" "$bits" "$mb" \
    || verdict="not chosen: over the budget ($bits bits per weight, $mb MB); $verdict"
verdict="$verdict; $bits bits per weight, $mb MB"
echo "realloc: $verdict" | tee "$OUT/$M-realloc-choice.txt"
$PY "$HERE/../whisper-cpp/paired.py" "$OUT/$M-tune-realloc-all.json" "$WORK/$M-cpu32" "$WORK/$M-cpu-realloc" \
    | tee "$OUT/$M-tune-realloc-paired.txt"
case $verdict in chosen*)
  [ -f "$OUT/$M-report-realloc.json" ] || $PY -m asrquant.cli bench --model "$WORK/$M-cpu-realloc" --data "$REPORT" \
      --threads 1 --json "$OUT/$M-report-realloc.json" --markdown "$OUT/$M-report-realloc.md"
  $PY "$HERE/merge.py" "$OUT/$M-report.json" "$OUT/$M-report-realloc.json" --out "$OUT/$M-report-realloc-merged.md";;
esac
