# Sourced by the refinement campaign's scripts (two-builds.sh, wide-builds.sh, wild-calib.sh,
# fresh-tune.sh, gptaq-start.sh): what they share, so that every build is made and exported alike
# and every candidate is judged against the same base builds. Reads WORK, M, OUT and PY.

# base2: the tag of the built-in refined recipe's second base build of model $M on this CPU model
# (at 2 threads; the first is `dwqb`, at 1 thread), or a failure naming the model.
base2() {
  case $M in
    whisper-base) echo dwqc ;;
    whisper-tiny.en) echo builtin-dwq ;;
    *) echo "$(basename "$0"): no base builds for $M" >&2; return 2 ;;
  esac
}

# build TAG THREADS RECIPE POOL: quantize $M by RECIPE on the calibration manifest POOL at THREADS
# threads into $WORK/$M-q-TAG under /usr/bin/time -v (report $OUT/$M-q-TAG.md, times
# $OUT/$M-q-TAG.time.txt, load average before and after in $OUT/$M-TAG.load.txt), then export it as
# the `cpu` target's artifact every campaign benches ($WORK/$M-cpu-TAG). A step whose output
# already has its manifest is skipped.
build() {
  local q="$WORK/$M-q-$1"
  [ -f "$q/manifest.json" ] || { uptime > "$OUT/$M-$1.load.txt"
    /usr/bin/time -v $PY -m asrquant.cli quantize "$M" --recipe "$3" --calib "$4" \
        --out "$q" --threads "$2" --verbose --quiet > "$OUT/$M-q-$1.md" 2> "$OUT/$M-q-$1.time.txt"
    uptime >> "$OUT/$M-$1.load.txt"; }
  [ -f "$WORK/$M-cpu-$1/manifest.json" ] || $PY -m asrquant.cli export "$q" --compute int8 --fp16 --attention int8 \
      --out "$WORK/$M-cpu-$1" --quiet
}
