"""Writers of the one quantized representation for runtimes.

Kept free of imports: the torch-free runner reads :mod:`asrquant.runtime.onnx_layout`, and
importing this package must not pull torch in.
"""
