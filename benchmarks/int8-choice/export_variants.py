"""The `cpu` target's artifact with the N encoder-graph Linears of highest int8 cost on float
compute, for several N, from one quantized model and one cost measurement:

    python benchmarks/int8-choice/export_variants.py QUANTIZED CALIB OUT N [N ...]

QUANTIZED: a model saved by `asrquant quantize` with the target's recipe (gptq-int4-g64-enc32-emb4);
CALIB: the calibration manifest it was quantized on. Each OUT/skip-N is what
`asrquant export MODEL --target cpu --calib CALIB --int8-skip N` writes (the target's options:
--compute int8 --fp16, no smoothing), less the GPTQ run and the cost measurement done once here:
the first N measures the costs (against the float source the saved model names), the others take
them back from its manifest (asrquant.export.onnx.int8_choice.Int8Costs.from_variant). Writes
OUT/costs.json (every Linear's costs and rank) and prints the seconds each step took.
"""

import json
import sys
import time
from pathlib import Path

import torch

from asrquant import families
from asrquant.artifact import read_manifest
from asrquant.export.onnx.int8_choice import Int8Costs
from asrquant.quant.saved import load_quantized


def main(quantized: str, calib: str, out: str, counts: list[int]) -> None:
    torch.set_num_threads(2)
    saved = load_quantized(quantized)
    source = json.loads((Path(quantized) / "config.json").read_text())["source"]
    float_model = families.module(saved.ckpt.family, "load").load(source).model
    export_onnx = families.module(saved.ckpt.family, "onnx_graphs").export_onnx
    costs = None
    for n in counts:
        t0 = time.perf_counter()
        dest = Path(out) / f"skip-{n}"
        export_onnx(saved.ckpt, dest, recipe=saved.recipe, compute="int8", fp16=True, calib=calib, smooth=False,
                    int8_skip=n, float_model=float_model, int8_costs=costs)
        info = read_manifest(dest)["variants"]["default"]
        if costs is None:
            costs = Int8Costs.from_variant(info)
            table = [{"linear": name, **t["int8_cost"]} for name, t in info["tensors"].items() if "int8_cost" in t]
            table.sort(key=lambda r: r["rank"])
            Path(out, "costs.json").write_text(json.dumps({"calibration": costs.calibration, "costs": table},
                                                          indent=1))
        print(f"skip-{n}: {time.perf_counter() - t0:.0f} s; float compute: {info['int8_choice']['float_compute']}",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], [int(a) for a in sys.argv[4:]])
