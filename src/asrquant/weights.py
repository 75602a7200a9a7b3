"""Numerically broken weights are refused at load, naming the tensor: a checkpoint whose bytes
were overwritten still parses, and would otherwise transcribe garbage ("!!!!!!!!") with exit 0."""

from __future__ import annotations

from .errors import ModelError

# No trained speech model holds a weight this large; random bytes read as float32 mostly do.
MAX_ABS = 1e6


def check_finite(tensors: dict, source: str) -> None:
    """ModelError naming the first floating tensor of ``tensors`` (name -> torch tensor) that
    holds NaN, an infinity, or a value beyond :data:`MAX_ABS`."""
    import torch

    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.device.type == "meta":
            continue
        if not torch.isfinite(t).all():
            bad = int((~torch.isfinite(t)).sum())
            raise ModelError(f"{source}: tensor {name} holds {bad} NaN or infinite value(s); the weights are broken")
        if t.numel() and float(t.abs().max()) > MAX_ABS:
            raise ModelError(f"{source}: tensor {name} holds a value of magnitude {float(t.abs().max()):.3g}; "
                             "the weights are broken")
