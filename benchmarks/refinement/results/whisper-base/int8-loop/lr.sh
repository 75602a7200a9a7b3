#!/usr/bin/env bash
# (ii) and (iii) with lr 0.0005 (chosen from the calibration check trajectories), exported, benched on the
# tuning set and the reporting set
cd /work/wt-int8loop
R=/work/runs/int8loop
CALIB=/root/.cache/asrquant/data/calib-7656df16cb3a6f73/manifest.jsonl
export PYTHONPATH=/work/runs/int8loop/src-checks OMP_NUM_THREADS=1
for r in e2e e2e-int8; do
  ( uptime > $R/q-lr-$r.load
    nice -n 19 /usr/bin/time -v /work/main/.venv/bin/python -m asrquant.cli quantize whisper-base --recipe $R/lr5e-4-$r.toml \
      --calib $CALIB --out $R/q-lr-$r --threads 1 --verbose --quiet > $R/q-lr-$r.md 2> $R/q-lr-$r.time
    uptime >> $R/q-lr-$r.load
    nice -n 19 /usr/bin/time -v /work/main/.venv/bin/python -m asrquant.cli export $R/q-lr-$r --compute int8 --fp16 \
      --out $R/cpu-lr-$r --quiet > $R/cpu-lr-$r.log 2> $R/cpu-lr-$r.time ) &
done
wait
for set in report-28cefc9f0b9d9b3e tune-7f3840193e972ea3; do
  ( nice -n 19 /usr/bin/time -v /work/main/.venv/bin/python -m asrquant.cli bench --model $R/cpu-lr-e2e --model $R/cpu-lr-e2e-int8 \
      --beam 1 --threads 1 --data /root/.cache/asrquant/data/$set/manifest.jsonl \
      --json $R/bench-lr-${set%%-*}.json --markdown $R/bench-lr-${set%%-*}.md > $R/bench-lr-${set%%-*}.log 2> $R/bench-lr-${set%%-*}.time ) &
done
wait
echo LRDONE
