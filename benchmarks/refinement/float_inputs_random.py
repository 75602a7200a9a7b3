"""GPTQ with and without ``float_inputs`` on the tests' tiny random Whisper: teacher-forced KL per
position to the float model on the calibration clips and on 16 random clips it was not calibrated
on, for the Linears alone and with the token table too. Random log-mels and token ids, no audio:
it shows how the shift fits its calibration tokens, not what it does on speech.

    python benchmarks/refinement/float_inputs_random.py [--clips 8 32]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from asrquant.quant.calibrate import CalibSample, quantize_model
from asrquant.quant.recipe import parse_recipe

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "quant"))
from test_calibrate import logits, tiny_whisper  # noqa: E402

RULE = 'format = "int"\nbits = 4\ngroup_size = 32\nalgorithm = "gptq"\noptions = {{ float_inputs = {} }}\n'


def recipe(linears: bool, table: bool):
    return parse_recipe("[calibration]\nclips = 64\n[[rules]]\n" + RULE.format(str(linears).lower())
                        + "[embedding]\n" + RULE.format(str(table).lower()))


def clips(rng, n: int) -> list[CalibSample]:
    return [CalibSample(rng.standard_normal((80, 200)).astype(np.float32),
                        rng.integers(0, 100, size=int(rng.integers(5, 15))).astype(np.int64)) for _ in range(n)]


def kl(model, ref, samples) -> float:
    out = []
    for s in samples:
        p, q = torch.log_softmax(logits(ref, s), -1), torch.log_softmax(logits(model, s), -1)
        out.append((p.exp() * (p - q)).sum(-1).mean().item())
    return float(np.mean(out))


def main() -> None:
    a = argparse.ArgumentParser()
    a.add_argument("--clips", type=int, nargs="+", default=[8, 32])
    args = a.parse_args()
    torch.set_num_threads(1)
    ref = tiny_whisper()
    print("| calibration clips | Linears | table | KL, calibration clips | KL, 16 other clips |")
    print("|---:|---|---|---:|---:|")
    for n in args.clips:
        rng = np.random.default_rng(5)
        cal, held = clips(rng, n), clips(rng, 16)
        for linears, table in ((False, False), (True, False), (True, True)):
            model = tiny_whisper()
            quantize_model(model, recipe(linears, table), cal, progress=False, device="cpu")
            with torch.no_grad():
                on_cal, on_held = kl(model, ref, cal), kl(model, ref, held)
            name = lambda on: "float_inputs" if on else "GPTQ"  # noqa: E731
            print(f"| {n} | {name(linears)} | {name(table)} | {on_cal:.5f} | {on_held:.5f} |")


if __name__ == "__main__":
    main()
