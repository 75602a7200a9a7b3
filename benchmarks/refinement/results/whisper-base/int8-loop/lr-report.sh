#!/usr/bin/env bash
set -e
cd /work/runs/int8loop
PY="env PYTHONPATH=/work/wt-int8loop/src /work/main/.venv/bin/python"
B=/work/wt-int8loop/benchmarks
$PY -c "
import json
a=json.load(open('bench-a.json')); b=json.load(open('bench-lr-report.json')); a['runs']+=b['runs']; json.dump(a,open('combined-lr.json','w'))
t=json.load(open('$B/int8-choice/tune.json')); t['runs']=[r for r in t['runs'] if r['spec'].endswith('skip-0')]
u=json.load(open('bench-lr-tune.json')); t['runs']+=u['runs']; json.dump(t,open('combined-lr-tune.json','w'))"
$PY $B/refinement/merge.py combined-lr.json --out merged-lr.md > /dev/null
$PY $B/refinement/merge.py combined-lr-tune.json --out merged-lr-tune.md > /dev/null
I=/work/runs/i8s/base-cpu; II=/work/runs/int8loop/cpu-lr-e2e; III=/work/runs/int8loop/cpu-lr-e2e-int8
{ for pair in "whisper-base $II" "whisper-base $III" "$I $II" "$I $III" "$II $III"; do echo "$pair:"; $PY $B/whisper-cpp/paired.py combined-lr.json $pair; done
  echo "tuning set:"; for pair in "/work/runs/int8choice/skip-0 $II" "/work/runs/int8choice/skip-0 $III" "$II $III"; do echo "$pair:"; $PY $B/whisper-cpp/paired.py combined-lr-tune.json $pair; done; } > paired-lr.txt
cat merged-lr.md merged-lr-tune.md paired-lr.txt
