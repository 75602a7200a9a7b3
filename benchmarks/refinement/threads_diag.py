"""Where does the thread count enter a build? whisper-tiny.en quantized at 1 and at 2 threads in one
process (RECIPE, default gptq-int4-g64; 8 clips of the default calibration set), the quantized
layers listed in quantization order with how many codes and scales differ, then the first layer
that differs and the total. PATCH=1 runs GPTQ's Cholesky factorizations on one thread (it changed
nothing: they were not the source). Run at 32ebbd2 for the code before GPTQ's sums were put in one
order. A small refined recipe: the built-in -dwq recipe with `clips = 8` and `steps = 8`.

    python benchmarks/refinement/threads_diag.py [RECIPE]
"""

import os
import sys

import torch

from asrquant.data.default_set import default_calib_set
from asrquant.quant import calibrate
from asrquant.quant.algorithms import gptq
from asrquant.quant.command import quantize
from asrquant.quant.threads import one_cpu_thread

if os.environ.get("PATCH"):
    cholesky = gptq.inverse_hessian_cholesky

    def one_thread(*a, **k):
        with one_cpu_thread(torch.device("cpu")):
            return cholesky(*a, **k)
    gptq.inverse_hessian_cholesky = one_thread

recipe = sys.argv[1] if len(sys.argv) > 1 else "gptq-int4-g64"
builds = {}
for threads in (1, 2):
    torch.set_num_threads(threads)
    qm = quantize("whisper-tiny.en", recipe, default_calib_set() / "manifest.jsonl", progress=False, clips=8)
    builds[threads] = ([l.name for l in qm.report.layers], calibrate.quantized_weights(qm.ckpt.model))
first, total = None, 0
for name in builds[1][0]:
    a, b = builds[1][1][name], builds[2][1][name]
    codes, scales = int((a.codes != b.codes).sum()), int((a.scales != b.scales).sum())
    total += codes
    first = first or (name if codes or scales else None)
    print(f"{name}: codes differ {codes}, scales differ {scales}")
print("first differing:", first, "total codes differing", total)
