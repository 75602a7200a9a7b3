#!/usr/bin/env bash
# Qwen3-ASR parity against the qwen-asr reference implementation, in its own environment.
#
# qwen-asr pins its own transformers (and pulls gradio, librosa, ...); .venv-qwen keeps those
# pins out of .venv. torch is installed first, pinned to the same CPU wheel as .venv (an open
# range would pull a CUDA build of several GB); asrquant goes in editable with --no-deps.
# The environment is built once and reused; delete .venv-qwen to rebuild it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-qwen
TORCH=${ASRQUANT_TORCH:-2.13.0}
QWEN_ASR=${ASRQUANT_QWEN_ASR:-0.0.6}
STAMP="$VENV/.asrquant-qwen-stamp"
WANT="torch==$TORCH qwen-asr==$QWEN_ASR"

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ] || ! "$VENV/bin/python" -c "import qwen_asr" 2>/dev/null; then
    echo "test-qwen-parity: building $VENV ($WANT)"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
    "${pip[@]}" "torch==$TORCH"
    "${pip[@]}" "torch==$TORCH" "qwen-asr==$QWEN_ASR" numpy safetensors tokenizers soundfile soxr rich pytest
    "${pip[@]}" --no-deps -e .
    "$VENV/bin/python" -c "import qwen_asr, asrquant"
    echo "$WANT" > "$STAMP"
fi
# The editable install points at this checkout; make sure it is this one (CI clones afresh).
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e . >/dev/null
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/models/qwen3_asr/test_reference_parity.py "$@"
