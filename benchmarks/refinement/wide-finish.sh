#!/usr/bin/env bash
# Issue 19: finish a wide-report.sh bench that was cut off (its JSON holds only its finished rows,
# `partial` in its settings; it is kept as it is): bench the missing rows in one new run with fp32
# first, and the shipped `q32` row again beside them (WORK/$M-cpu32, calib-size.sh's; if that was
# lost, calib-size.sh builds it again, and a build on another CPU is another artifact). Where
# the `q32` row gives the first run's text on every clip, the rebuilt set and artifact are the
# first run's, and the first run's other rows are joined to the new run ($M-wide-joined-all.json,
# merged tables). Where it does not, nothing is joined: the first run's rows pair only with each
# other, and the two builds of `q32` are compared clip by clip (paired.py: the spread of one
# recipe quantized twice). Results in $M-wide-finish.txt.
#
#   bash benchmarks/refinement/wide-finish.sh WORK WIDE MODEL   (after wide-report.sh was cut off)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: wide-finish.sh WORK WIDE MODEL}
WIDE=${2:?usage: wide-finish.sh WORK WIDE MODEL}
M=${3:?usage: wide-finish.sh WORK WIDE MODEL}
PY=${PYTHON:-python}
OUT=$HERE/results/wide
FIRST=$OUT/$M-wide.json
SET=$($PY "$HERE/wide_set.py" "$WIDE")
$PY "$HERE/complete.py" "$OUT/$M-wide-rest.json" || $PY -m asrquant.cli bench --model "$M" --model "$WORK/$M-cpu32" \
    --model "faster-whisper:$M:int8" --data "$SET" --threads 1 --jobs 2 \
    --json "$OUT/$M-wide-rest.json" --markdown "$OUT/$M-wide-rest.md"
{
  if $PY - "$FIRST" "$OUT/$M-wide-rest.json" "$OUT/$M-wide-joined-all.json" <<'PYEOF'
import json, sys
first, rest = (json.load(open(p)) for p in sys.argv[1:3])
new = {r["spec"]: r for r in rest["runs"]}
differ = False
for run in first["runs"]:
    if run["spec"] in new:  # the check: same text on every clip
        same = sum(a["hyp"] == b["hyp"] for a, b in zip(run["clips"], new[run["spec"]]["clips"], strict=True))
        print(f"{run['spec']}: same text as the first run on {same}/{len(run['clips'])} clips")
        differ |= same < len(run["clips"])
if differ:
    print("not joined: the rebuilt set or artifact differs from the first run's")
    sys.exit(3)
extra = [r for r in first["runs"] if r["spec"] not in new]
joined = {**rest, "runs": rest["runs"] + extra}
joined["settings"] = {**rest["settings"], "joined": f"{len(extra)} run(s) from the first, cut-off bench"}
json.dump(joined, open(sys.argv[3], "w"))
PYEOF
  then
    $PY "$HERE/merge.py" "$OUT/$M-wide-joined-all.json" --out "$OUT/$M-wide-joined-merged.md"
    $PY "$HERE/by_condition.py" "$OUT/$M-wide-joined-all.json"
  else
    $PY "$HERE/join_reports.py" "$FIRST" "$OUT/$M-wide-rest.json" --last-suffix "#rebuilt" --out "$OUT/$M-wide-builds-all.json"
    echo "q32, first build -> rebuilt:"
    $PY "$HERE/../whisper-cpp/paired.py" "$OUT/$M-wide-builds-all.json" "$WORK/$M-cpu32" "$WORK/$M-cpu32#rebuilt"
  fi
} | tee "$OUT/$M-wide-finish.txt"
