"""Export a saved quantized Whisper as the `cpu` target's version 2 does (`--compute int8 --fp16
--attention int8`, no smoothing), with the encoder's self-attention in chunks of ROWS queries instead
of onnx_graphs.ENCODER_QUERY_ROWS, as the variant ``rROWS`` of OUT; then `memory.py OUT@rROWS`
says whether the chunks drive the peak RSS.

    python benchmarks/onnx-speed/query_rows.py QUANTIZED_DIR OUT ROWS
"""

import sys

import asrquant.models.whisper.onnx_graphs as onnx_graphs
from asrquant.quant.saved import load_quantized

if __name__ == "__main__":
    quantized, out, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    onnx_graphs.ENCODER_QUERY_ROWS = rows  # read when the encoder is traced
    saved = load_quantized(quantized)
    onnx_graphs.export_onnx(saved.ckpt, out, recipe=saved.recipe, variant=f"r{rows}", compute="int8", fp16=True,
                            smooth=False, attention="int8")
