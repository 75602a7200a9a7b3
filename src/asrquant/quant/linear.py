"""The fake-quant Linear: the numerical reference every runtime is compared against."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .qtensor import QuantizedWeight, dequantize


class QuantLinear(nn.Module):
    """``y = (x / input_scale) @ dequantize(qw).T + bias``, as fast as nn.Linear.

    The dequantized weight is cached as the buffer ``weight`` (so code that reads
    ``module.weight`` keeps working and the state dict holds the weights the codes stand for);
    the reciprocal of the input scale, when there is one, as ``inv_input_scale``. The
    :class:`QuantizedWeight` itself stays on the CPU in ``self.qweight``.
    """

    def __init__(self, qweight: QuantizedWeight, bias: Tensor | None = None):
        super().__init__()
        self.qweight = qweight
        self.out_features, self.in_features = qweight.shape
        self.register_buffer("weight", dequantize(qweight).contiguous())
        if qweight.input_scale is not None:
            self.register_buffer("inv_input_scale", (1.0 / qweight.input_scale.float()).contiguous())
        else:
            self.inv_input_scale = None
        if bias is not None:
            self.register_buffer("bias", bias.detach().float().clone())
        else:
            self.bias = None

    @classmethod
    def from_linear(cls, linear: nn.Linear, qweight: QuantizedWeight) -> "QuantLinear":
        if tuple(linear.weight.shape) != tuple(qweight.shape):
            raise ValueError(f"weight shape {list(linear.weight.shape)} != quantized {list(qweight.shape)}")
        m = cls(qweight, linear.bias)
        return m.to(linear.weight.device)

    def forward(self, x: Tensor) -> Tensor:
        if self.inv_input_scale is not None:
            x = x * self.inv_input_scale
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        s = f"in_features={self.in_features}, out_features={self.out_features}, scheme={self.qweight.scheme.name}"
        return s + (", input_scale" if self.inv_input_scale is not None else "")


class QuantEmbedding(nn.Module):
    """A token embedding whose table is a :class:`QuantizedWeight` [vocab, dim].

    Rows are looked up in the dequantized table, cached as the buffer ``weight``; a model that
    ties its output projection to the embedding (Whisper: ``logits = x @ weight.T``) therefore
    computes its logits with the same dequantized numbers, as an exporter's MatMulNBits does.
    """

    def __init__(self, qweight: QuantizedWeight):
        super().__init__()
        if qweight.input_scale is not None:
            raise ValueError("an embedding table has no input scale")
        self.qweight = qweight
        self.num_embeddings, self.embedding_dim = qweight.shape
        self.register_buffer("weight", dequantize(qweight).contiguous())

    @classmethod
    def from_embedding(cls, emb: nn.Embedding, qweight: QuantizedWeight) -> "QuantEmbedding":
        if tuple(emb.weight.shape) != tuple(qweight.shape):
            raise ValueError(f"table shape {list(emb.weight.shape)} != quantized {list(qweight.shape)}")
        return cls(qweight).to(emb.weight.device)

    def forward(self, tokens: Tensor) -> Tensor:
        return F.embedding(tokens, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, scheme={self.qweight.scheme.name}"


def linear_names(model: nn.Module) -> list[str]:
    """Every Linear of the model, float or quantized, in module order."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, QuantLinear))]
