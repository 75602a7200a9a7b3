import torch
import torch.nn.functional as F
from torch import nn

from asrquant.quant.algorithms.rtn import rtn
from asrquant.quant.linear import QuantLinear
from asrquant.quant.qtensor import dequantize
from asrquant.quant.scheme import QuantScheme


def test_quant_linear_is_the_dequantized_linear():
    torch.manual_seed(0)
    lin = nn.Linear(64, 32)
    qw = rtn(lin.weight, QuantScheme.int(4, 32))
    q = QuantLinear.from_linear(lin, qw)
    x = torch.randn(3, 5, 64)
    assert torch.equal(q(x), F.linear(x, dequantize(qw), lin.bias))
    assert set(q.state_dict()) == {"weight", "bias"}
    assert (q.in_features, q.out_features) == (64, 32)


def test_quant_linear_applies_input_scale():
    torch.manual_seed(0)
    lin = nn.Linear(64, 32, bias=False)
    s = torch.rand(64) + 0.5
    qw = rtn(lin.weight * s, QuantScheme.nvfp4())
    qw.input_scale = s
    q = QuantLinear.from_linear(lin, qw)
    x = torch.randn(4, 64)
    torch.testing.assert_close(q(x), F.linear(x / s, dequantize(qw)), rtol=1e-6, atol=1e-6)
    assert q.bias is None and "input_scale" in repr(q)
