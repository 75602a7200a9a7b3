#!/usr/bin/env bash
# Issue 19: do bench rows from two machines pair clip by clip? The wide set's first rows were benched
# on one machine (results/wide/cpu.txt) and later rows on another, from audio rebuilt there
# (wide_set.py; the clips' durations match to the sample). fp32 (torch, greedy) on one clip of each
# sentence and seed of the wide set here, the condition turning from one to the next (120 clips,
# 13 or 14 of each of the 9; wide_set.py lists a sentence's 9 clips in a row), its text compared
# clip by clip with the first machine's fp32 row: identical text means the rebuilt audio and the
# float engine give the same transcripts, and rows from both machines may be paired. MODEL default
# whisper-base.
#
#   bash benchmarks/refinement/machine-check.sh WORK WIDE [MODEL]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: machine-check.sh WORK WIDE [MODEL]}
WIDE=${2:?usage: machine-check.sh WORK WIDE [MODEL]}
M=${3:-whisper-base}
PY=${PYTHON:-python}
OUT=$HERE/results/wide
awk '(NR - 1) % 9 == int((NR - 1) / 9) % 9' "$($PY "$HERE/wide_set.py" "$WIDE")" > "$WORK/wide-every9.jsonl"
$PY -c "from asrquant.cpu import describe_cpu; print(describe_cpu())" > "$OUT/cpu-check.txt"
$PY "$HERE/complete.py" "$OUT/$M-wide-every9.json" || $PY -m asrquant.cli bench --model "$M" --data "$WORK/wide-every9.jsonl" \
    --threads 1 --json "$OUT/$M-wide-every9.json" --markdown "$OUT/$M-wide-every9.md"
$PY - "$OUT/$M-wide.json" "$OUT/$M-wide-every9.json" "$M" <<'PYEOF' | tee "$OUT/$M-machine-check.txt"
import json, sys
first = {c["id"]: c for r in json.load(open(sys.argv[1]))["runs"] if r["spec"] == sys.argv[3] for c in r["clips"]}
here = json.load(open(sys.argv[2]))["runs"][0]["clips"]
same = [c["id"] for c in here if c["hyp"] == first[c["id"]]["hyp"]]
print(f"{sys.argv[3]} fp32: same text on both machines on {len(same)}/{len(here)} clips; "
      f"errors {sum(first[c['id']]['errors'] for c in here)} there, {sum(c['errors'] for c in here)} here")
for c in here:
    if c["id"] not in same:
        print(f"  {c['id']}: {first[c['id']]['hyp']!r} -> {c['hyp']!r}")
PYEOF
