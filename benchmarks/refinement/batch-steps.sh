#!/usr/bin/env bash
# Issue 19: sign steps on four clips' gradients. The built-in refined recipe takes each sign step
# on one clip's gradient; where a scale's gradient is small its sign is that clip's noise, and two
# builds of the recipe (another thread count, another last bit) read ~1 pp apart on the wide set.
# Candidate `b4` (recipes/dwq-b4.toml): the built-in gptq-int4-g64-enc32-emb4-dwq with `batch = 4`,
# 86 steps instead of 344 (the same 344 clip passes, the same cost) and a step size four times
# larger (0.001: the same largest total move of a scale). Calibration: the built-in pool.
# Builds, on this machine: the candidate twice, at 1 and at 2 threads, at once (`b4t1`, `b4t2`: a
# thread count draws another build); the base is the built-in recipe's two builds on this CPU
# model at the same thread counts, as wild-calib.sh compared them: `dwqb` (1 thread) and
# `builtin-dwq` (tiny.en) or `dwqc` (whisper-base), whose tuning rows wild-calib.sh benched
# (results/wild/$M-tune-base.json: fp32 and both builds).
# Since run, a call of two-builds.sh (the same steps for any recipe; results in results/b4, the
# tuning bench as $M-tune.json, run under its first name $M-tune-b4.json in results/batch).
# The rule, fixed before the run: one bench of the tuning clips (tune-all.jsonl, 384 clips, 5202
# words) for b4t1 and b4t2, greedy, one thread per row, two rows at once, joined to the base rows
# clip by clip (greedy decoding is deterministic on one CPU model); `b4` is chosen if the mean of
# its two builds has fewer word errors than the mean of the base's two and no more new failures on
# average (builds_choose.py). Only if chosen: both builds on the wide reporting set (1080 clips),
# against the built-in recipe's three builds there (builds.sh) and fp32.
#
#   bash benchmarks/refinement/batch-steps.sh WORK WIDE [MODEL]   (after wild-calib.sh)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
exec bash "$HERE/two-builds.sh" "${1:?usage: batch-steps.sh WORK WIDE [MODEL]}" \
    "${2:?usage: batch-steps.sh WORK WIDE [MODEL]}" "${3:-whisper-tiny.en}" b4 "$HERE/recipes/dwq-b4.toml"
