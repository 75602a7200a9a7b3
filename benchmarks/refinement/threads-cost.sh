#!/usr/bin/env bash
# What the thread-invariant GPTQ build costs: the Hessians' GEMMs and the decoder's calibration
# passes now run on one thread (0456e63), so a recipe gives the same tensors at any --threads.
# The `cpu` target's recipe (gptq-int4-g64-enc32-emb4, the default calibration set, --threads 2)
# quantized by the code before (BEFORE, a git commit, checked out into WORK/before) and after
# (this tree), interleaved PAIRS times; /usr/bin/time's wall and CPU seconds, their medians and
# the ratio after / before. Then repeat-check.sh's pair at 2 and 1 threads is the check that the
# tensors no longer differ (TAG=threads1-fixed).
#
#   bash benchmarks/refinement/threads-cost.sh WORK [MODEL] [PAIRS] [BEFORE]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=${1:?usage: threads-cost.sh WORK [MODEL] [PAIRS] [BEFORE]}
M=${2:-whisper-tiny.en}
PAIRS=${3:-3}
BEFORE=${4:-32ebbd2}
PY=${PYTHON:-python}
OUT=$HERE/results/threads
mkdir -p "$OUT" "$WORK"
if [ ! -d "$WORK/before" ]; then  # a checkout of the code before, removed when this run ends
  git -C "$ROOT" worktree add --detach "$WORK/before" "$BEFORE" >/dev/null
  trap 'git -C "$ROOT" worktree remove --force "$WORK/before"' EXIT
fi
read -r CALIB _ < <($PY "$HERE/../tools/sets.py")
log=$OUT/$M-cost.tsv
echo -e "pair\tcode\twall_s\tcpu_s\tload1" > "$log"
for i in $(seq 1 "$PAIRS"); do
  for code in before after; do
    src=$ROOT/src; [ $code = before ] && src=$WORK/before/src
    q=$WORK/$M-$code-$i; rm -rf "$q"
    PYTHONPATH=$src /usr/bin/time -f "%e %U %S" -o "$WORK/time.txt" $PY -m asrquant.cli quantize "$M" \
        --recipe gptq-int4-g64-enc32-emb4 --calib "$CALIB" --out "$q" --threads 2 --quiet
    read -r wall user sys < "$WORK/time.txt"
    echo -e "$i\t$code\t$wall\t$(echo "$user + $sys" | bc)\t$(cut -d' ' -f1 /proc/loadavg)" >> "$log"
  done
done
{ $PY -c "from asrquant.cpu import describe_cpu; print(describe_cpu())"
  $PY - "$log" <<'PYEOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = {c: {k: statistics.median(float(r[k]) for r in rows if r["code"] == c) for k in ("wall_s", "cpu_s")}
       for c in ("before", "after")}
for c in ("before", "after"):
    print(f"{c}: median wall {med[c]['wall_s']:.1f} s, CPU {med[c]['cpu_s']:.1f} s "
          f"over {sum(r['code'] == c for r in rows)} builds")
print(f"after / before: wall x{med['after']['wall_s'] / med['before']['wall_s']:.2f}, "
      f"CPU x{med['after']['cpu_s'] / med['before']['cpu_s']:.2f}")
PYEOF
} | tee "$OUT/$M-cost.txt"
