#!/bin/bash
# Issue 23, item 3: the cpu target's ONNX int4 artifact (whisper-base) with the encoder's attention
# unfused (as the target ships it) and fused (--attention fused), beside faster-whisper int8:
# per-op profile, bench (vitw8 + dev, 2 threads, greedy, 3 interleaved repetitions), CPU time,
# agreement with the fake-quant reference, encoder timing and error, long audio.
# Each step is skipped when its output exists. Wants a quiet machine for the wall-clock timings.
set -e
cd "$(dirname "$0")/../.."
AQ=${AQ:-.venv/bin/asrquant}; PY=${PY:-.venv/bin/python}
B=benchmarks/onnx-speed; O=runs/onnx-speed; M=whisper-base; A=$O/$M-cpu
VITW=../shared/data/vitw8/manifest.jsonl; DEV=../shared/data/dev/manifest.jsonl
mkdir -p $O
# The same artifact as `asrquant export whisper-base --target cpu --calib $DEV`, quantized once:
# GPTQ (gptq-int4-g64-enc32-emb4), --compute int8 --fp16, no smoothing.
[ -d $O/$M-q ] || $AQ quantize $M --recipe gptq-int4-g64-enc32-emb4 --calib $DEV --out $O/$M-q
[ -d $A ] || $AQ export $O/$M-q --compute int8 --fp16 --out $A
grep -q '"fused"' $A/manifest.json || $AQ export $O/$M-q --compute int8 --fp16 --attention fused --variant fused --out $A
# 1. Where the time goes (onnxruntime's profiler; first clip = warm-up, left out)
[ -f $B/profile-unfused.json ] || $PY $B/profile_ops.py $A $VITW --json $B/profile-unfused.json
[ -f $B/profile-fused.json ] || $PY $B/profile_ops.py $A@fused $VITW --json $B/profile-fused.json
# 2. Speed: every row in its own process, repetitions interleaved
[ -f $O/bench.json ] || $AQ bench --model $A --model $A@fused --model faster-whisper:$M:int8 \
  --data $VITW --data $DEV --repeat 3 --threads 2 --json $O/bench.json --markdown $B/bench.md
$PY $B/summarize.py $O/bench.json --out $B/bench-summary.json
# CPU seconds per audio second, 1 thread, the three rows at once (counts work, not waiting)
[ -f $B/cpu-time.json ] || $PY benchmarks/whisper-cpp/cpu_time.py --json $B/cpu-time.json --data $VITW --data $DEV \
  $A $A@fused faster-whisper:$M:int8
# One 30 s encoder call, interleaved
[ -f $B/encoder-cpu-time.json ] || $PY $B/encoder_cpu_time.py $A default fused --threads 1 --repeat 7 \
  --json $B/encoder-cpu-time.json
[ -f $B/encoder-time-2threads.json ] || $PY $B/encoder_cpu_time.py $A default fused --threads 2 --repeat 9 \
  --json $B/encoder-time-2threads.json
# Exactness: texts against the torch fake-quant model, encoder outputs against its
[ -f $B/reference-agreement.json ] || $PY $B/reference_agreement.py $O/bench.json $O/$M-q \
  --json $B/reference-agreement.json
[ -f $B/encoder-error.json ] || $PY $B/encoder_error.py $A $O/$M-q $VITW default fused --json $B/encoder-error.json
# Token ids, fused against unfused (the bench compares texts)
[ -f $B/token-parity.json ] || $PY $B/token_parity.py $A $A@fused $VITW $DEV --json $B/token-parity.json
# Long audio: every vitw8 + dev clip in one 148 s clip (5 windows), 1 or 2 windows per encoder run
[ -f $B/long-audio.json ] || $PY $B/long_audio.py $A@fused $VITW $DEV --repeat 3 --threads 1 --json $B/long-audio.json
[ -f $B/long-audio-2threads.json ] || $PY $B/long_audio.py $A@fused $VITW $DEV --repeat 3 --threads 2 \
  --json $B/long-audio-2threads.json
