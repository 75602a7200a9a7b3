#!/usr/bin/env bash
# Issue 19: is a quantization repeatable on one machine? The shipped `cpu` recipe
# (gptq-int4-g64-enc32-emb4, calib-size.sh's `q32`) quantized twice on the default calibration set,
# the same command; the two artifacts' tensors compared element by element, and their files'
# sha256. Across machines the same recipe gives other artifacts (dwq-rerun.sh, wide-finish.sh).
# MODEL default whisper-tiny.en. TAG (environment) names the result file apart, for a run of the
# same check after a change (`sorted`: after the saved model's metadata keys were written sorted).
# THREADS_B (environment): the second quantization on that many threads instead of 2 (its own
# directory), so the pair shows whether the thread count changes the tensors.
#
#   [TAG=...] bash benchmarks/refinement/repeat-check.sh WORK [MODEL]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: repeat-check.sh WORK [MODEL]}
M=${2:-whisper-tiny.en}
PY=${PYTHON:-python}
OUT=$HERE/results/calib-size
read -r CALIB _ < <($PY "$HERE/../tools/sets.py")
B=b${THREADS_B:+-t$THREADS_B}
for run in a $B; do
  threads=2; [ $run = a ] || threads=${THREADS_B:-2}
  [ -f "$WORK/$M-repeat-$run/manifest.json" ] || $PY -m asrquant.cli quantize "$M" --recipe gptq-int4-g64-enc32-emb4 \
      --calib "$CALIB" --out "$WORK/$M-repeat-$run" --threads $threads --quiet
done
{ $PY -c "from asrquant.cpu import describe_cpu; print(describe_cpu())"
  echo "threads: a 2, $B ${THREADS_B:-2}"
  $PY - "$WORK/$M-repeat-a/model.safetensors" "$WORK/$M-repeat-$B/model.safetensors" <<'PYEOF'
import hashlib, sys
from safetensors.numpy import load_file
a, b = (load_file(p) for p in sys.argv[1:3])
assert a.keys() == b.keys()
differ = sum(int((a[k] != b[k]).sum()) for k in a)
print(f"{len(a)} tensors, {sum(v.size for v in a.values())} elements, {differ} differ")
print("sha256 of the files:", *(hashlib.sha256(open(p, "rb").read()).hexdigest()[:16] for p in sys.argv[1:3]))
PYEOF
} | tee "$OUT/$M-repeat-check${TAG:+-$TAG}.txt"
