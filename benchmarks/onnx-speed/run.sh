#!/bin/bash
# Issue 23, item 3: the cpu target's ONNX int4 artifact (whisper-base) with the encoder's attention
# unfused (target cpu v1) and fused (v2), beside faster-whisper int8: per-op profile, bench
# (vitw8 + dev, 2 threads, greedy, 3 interleaved repetitions), token parity, long audio.
# Each step is skipped when its output exists. Wants a quiet machine for the timings.
set -e
cd "$(dirname "$0")/../.."
AQ=${AQ:-.venv/bin/asrquant}; PY=${PY:-.venv/bin/python}
B=benchmarks/onnx-speed; O=runs/onnx-speed; M=whisper-base
VITW=../shared/data/vitw8/manifest.jsonl; DEV=../shared/data/dev/manifest.jsonl
mkdir -p $O
# The same artifact as `asrquant export whisper-base --target cpu --calib $DEV`, quantized once:
# GPTQ (gptq-int4-g64-enc32-emb4), --compute int8 --fp16, no smoothing.
[ -d $O/$M-q ] || $AQ quantize $M --recipe gptq-int4-g64-enc32-emb4 --calib $DEV --out $O/$M-q
[ -d $O/$M-cpu ] || $AQ export $O/$M-q --compute int8 --fp16 --out $O/$M-cpu
grep -q '"fused"' $O/$M-cpu/manifest.json || \
  $AQ export $O/$M-q --compute int8 --fp16 --attention fused --variant fused --out $O/$M-cpu
# Where the time goes (onnxruntime's profiler; first clip = warm-up, left out)
[ -f $B/profile-unfused.json ] || $PY $B/profile_ops.py $O/$M-cpu $VITW --json $B/profile-unfused.json
[ -f $B/profile-fused.json ] || $PY $B/profile_ops.py $O/$M-cpu@fused $VITW --json $B/profile-fused.json
# Speed: every row in its own process, repetitions interleaved
[ -f $O/bench.json ] || $AQ bench --model $O/$M-cpu --model $O/$M-cpu@fused --model faster-whisper:$M:int8 \
  --data $VITW --data $DEV --repeat 3 --threads 2 --json $O/bench.json --markdown $O/bench.md
$PY $B/summarize.py $O/bench.json --out $B/bench-summary.json
# CPU seconds per audio second, 1 thread, the three rows at once (for a busy machine: counts work, not waiting)
[ -f $B/cpu-time.json ] || $PY benchmarks/whisper-cpp/cpu_time.py --json $B/cpu-time.json --data $VITW --data $DEV \
  $O/$M-cpu $O/$M-cpu@fused faster-whisper:$M:int8
# Token for token, fused against unfused
[ -f $B/token-parity.json ] || $PY $B/token_parity.py $O/$M-cpu $O/$M-cpu@fused $VITW $DEV --json $B/token-parity.json
# Long audio: every vitw8 + dev clip in one 2 min 20 s clip (5 windows), 1 or 2 windows per encoder run
[ -f $B/long-audio.json ] || $PY $B/long_audio.py $O/$M-cpu@fused $VITW $DEV --repeat 5 --threads 1 --json $B/long-audio.json
