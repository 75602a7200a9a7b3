#!/bin/bash
# runs/data/wild-eval/eval-225.jsonl: the first 25 clips of each category (clean + the eight
# conditions) of the robustness eval set made by `asrquant data` (README, "Robustness sets").
set -e
cd "$(dirname "$0")/../.."
python3 - <<'PY'
import collections, json
seen, out = collections.Counter(), []
for line in open("runs/data/wild-eval/manifest.jsonl"):
    c = json.loads(line)
    if seen[c["category"]] < 25:
        seen[c["category"]] += 1
        out.append(line)
open("runs/data/wild-eval/eval-225.jsonl", "w").writelines(out)
print(len(out), "clips:", dict(seen))
PY
