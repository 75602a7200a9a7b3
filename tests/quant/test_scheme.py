import pytest
import torch

from asrquant.quant.scheme import QuantScheme, bits_per_weight


def test_validation():
    with pytest.raises(ValueError):
        QuantScheme.int(9)
    with pytest.raises(ValueError):
        QuantScheme.int(1)
    with pytest.raises(ValueError):
        QuantScheme.int(4, 0)
    with pytest.raises(ValueError):
        QuantScheme("nvfp4", 4, 32, True)
    with pytest.raises(ValueError):
        QuantScheme("fp8", 8, 128, True)
    assert QuantScheme.from_dict(QuantScheme.int(3, 32, True).to_dict()) == QuantScheme.int(3, 32, True)


def test_scale_dtype_round_trips_and_old_dicts_still_load():
    half = QuantScheme.int(4, 64, scale_dtype="float16")
    assert half.to_dict()["scale_dtype"] == "float16" and QuantScheme.from_dict(half.to_dict()) == half
    # a default scheme's dict is the one written before the field existed, and such dicts load
    old = {"format": "int", "bits": 4, "group_size": 64, "symmetric": False}
    assert QuantScheme.int(4, 64).to_dict() == old and QuantScheme.from_dict(old).scale_dtype == "float32"
    with pytest.raises(ValueError, match="scale_dtype must be one of float32, float16, bfloat16"):
        QuantScheme.int(4, 64, scale_dtype="float8")
    with pytest.raises(ValueError, match="applies to int only"):
        QuantScheme("nvfp4", 4, 16, True, "float16")


def test_round_scales_to_the_stored_dtype_and_never_to_zero():
    s = torch.tensor([0.1, 1e-9, 0.0, 1e6])
    half = QuantScheme.int(4, 64, scale_dtype="float16").round_scales(s)
    assert half[0] == torch.tensor(0.1).half().float() and half[0] != s[0]  # nearest float16
    assert half[1] == half[2] == 2.0**-14 and half[3] == 65504.0  # smallest normal, largest finite
    assert torch.equal(half.half().float(), half)
    bf = QuantScheme.int(4, 64, scale_dtype="bfloat16").round_scales(s[:2])
    assert torch.equal(bf, s[:2].bfloat16().float())
    assert QuantScheme.int(4, 64).round_scales(s) is s


def test_names_and_bits_per_weight():
    assert QuantScheme.int(4, 64).name == "int4-g64-asym"
    assert QuantScheme.int(8, -1, True).name == "int8-ch-sym"
    assert QuantScheme.int(4, 64, scale_dtype="float16").name == "int4-g64-asym-fp16"
    assert QuantScheme.int(8, -1, True, "bfloat16").name == "int8-ch-sym-bf16"
    # the scale costs what the scheme stores it in
    assert bits_per_weight(QuantScheme.int(4, 64)) == 4 + (32 + 4) / 64
    assert bits_per_weight(QuantScheme.int(4, 64, scale_dtype="float16")) == 4 + (16 + 4) / 64
    assert bits_per_weight(QuantScheme.int(4, 128, True, "bfloat16")) == 4 + 16 / 128
    assert bits_per_weight(QuantScheme.int(8, -1, True), 512) == 8 + 32 / 512
    assert bits_per_weight(QuantScheme.nvfp4()) == 4.5
    assert bits_per_weight(QuantScheme.mxfp4()) == 4.25


def test_compressed_tensors_args():
    pytest.importorskip("compressed_tensors")
    a = QuantScheme.int(4, 64).to_compressed_tensors_args()
    assert (a.num_bits, a.type, a.symmetric, a.strategy, a.group_size) == (4, "int", False, "group", 64)
    c = QuantScheme.int(8, -1, True).to_compressed_tensors_args()
    assert (c.num_bits, c.strategy, c.symmetric, c.scale_dtype) == (8, "channel", True, None)
    h = QuantScheme.int(4, 64, scale_dtype="float16").to_compressed_tensors_args()
    assert h.scale_dtype == torch.float16 and h.group_size == 64
    nv = QuantScheme.nvfp4().to_compressed_tensors_args()
    assert (nv.num_bits, nv.type, nv.group_size, nv.strategy) == (4, "float", 16, "tensor_group")
    mx = QuantScheme.mxfp4().to_compressed_tensors_args()
    assert (mx.num_bits, mx.type, mx.group_size) == (4, "float", 32)
