#!/usr/bin/env bash
# Issue 19: finish a wide-report.sh bench that was cut off (its JSON holds only its finished rows,
# `partial` in its settings): bench the missing rows in one new run with fp32 first, re-bench the
# shipped `q32` row beside them as a check that the rebuilt set (wide_set.py) and artifact give
# clip for clip the same text as the first run (greedy decoding is deterministic), then join the
# new run with the first run's rows that are not in it and write the merged tables. The first run's
# JSON is kept as it is, under -first.json.
#
#   bash benchmarks/refinement/wide-finish.sh WORK WIDE MODEL   (after wide-report.sh was cut off)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: wide-finish.sh WORK WIDE MODEL}
WIDE=${2:?usage: wide-finish.sh WORK WIDE MODEL}
M=${3:?usage: wide-finish.sh WORK WIDE MODEL}
PY=${PYTHON:-python}
OUT=$HERE/results/wide
FIRST=$OUT/$M-wide-first.json
[ -f "$FIRST" ] || cp "$OUT/$M-wide.json" "$FIRST"
SET=$($PY "$HERE/wide_set.py" "$WIDE")
[ -f "$OUT/$M-wide-rest.json" ] || $PY -m asrquant.cli bench --model "$M" --model "$WORK/$M-cpu32" \
    --model "faster-whisper:$M:int8" --data "$SET" --threads 1 --jobs 2 \
    --json "$OUT/$M-wide-rest.json" --markdown "$OUT/$M-wide-rest.md"
$PY - "$FIRST" "$OUT/$M-wide-rest.json" "$OUT/$M-wide.json" <<'PYEOF'
import json, sys
first, rest = (json.load(open(p)) for p in sys.argv[1:3])
new = {r["spec"]: r for r in rest["runs"]}
for run in first["runs"]:
    if run["spec"] in new:  # the check: same text on every clip
        same = sum(a["hyp"] == b["hyp"] for a, b in zip(run["clips"], new[run["spec"]]["clips"], strict=True))
        print(f"{run['spec']}: same text as the first run on {same}/{len(run['clips'])} clips")
        assert same == len(run["clips"]), "the rebuilt set or artifact differs from the first run's"
extra = [r for r in first["runs"] if r["spec"] not in new]
joined = {**rest, "runs": rest["runs"] + extra}
joined["settings"] = {**rest["settings"], "joined": f"{len(extra)} run(s) from the first, cut-off bench"}
json.dump(joined, open(sys.argv[3], "w"))
PYEOF
$PY "$HERE/merge.py" "$OUT/$M-wide.json" --out "$OUT/$M-wide-merged.md"
$PY "$HERE/by_condition.py" "$OUT/$M-wide.json" | tee "$OUT/$M-wide-conditions.md"
