#!/usr/bin/env bash
# Repeatability of calibration: GPTQ alone (gptq-int4-g64-enc32-emb4) quantized twice, on the two
# halves of the default calibration set (its 64 clips by line: 0-31 = sentences 0-15, 32-63 =
# sentences 16-31, each clean + one degraded), then benched together with float first on the
# reporting set (the 80 clips of run.sh). The recipe takes 32 clips: each quantization uses its whole half.
# usage: benchmarks/refinement/halves.sh [MODEL] [OUT]   (repository root; PY, NICE as in run.sh)
set -euo pipefail
M=${1:-whisper-base}
OUT=${2:-runs/refinement/$M/halves}
PY=${PY:-python}
NICE=${NICE:-}
mkdir -p "$OUT"
read -r CALIB REPORT < <($PY "$(dirname "$0")/../tools/sets.py")  # the shared calibration and reporting sets
# The halves' manifests, audio paths made absolute (they are read relative to the manifest).
$PY - "$CALIB" "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
calib, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = [json.loads(l) for l in calib.read_text().splitlines() if l.strip()]
assert len(rows) == 64, len(rows)
for name, part in (("a", rows[:32]), ("b", rows[32:])):
    for r in part:
        r["audio"] = str((calib.parent / r["audio"]).resolve())
    (out / f"calib-{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
PYEOF
for h in a b; do
  [ -f "$OUT/q-$h/manifest.json" ] && continue
  uptime > "$OUT/q-$h.load"
  $NICE /usr/bin/time -v $PY -m asrquant.cli quantize "$M" --recipe gptq-int4-g64-enc32-emb4 --calib "$OUT/calib-$h.jsonl" \
      --out "$OUT/q-$h" --threads 2 --verbose --quiet > "$OUT/q-$h.md" 2> "$OUT/q-$h.time"
  uptime >> "$OUT/q-$h.load"
done
[ -n "${NOBENCH:-}" ] && exit 0
uptime > "$OUT/report-halves.load"
$NICE $PY -m asrquant.cli bench --model "$M" --model "$OUT/q-a" --model "$OUT/q-b" \
    --threads 2 --data "$REPORT" --json "$OUT/report-halves.json" --markdown "$OUT/report-halves.md"
uptime >> "$OUT/report-halves.load"
