"""Validators for numeric and name options (argparse ``type=``), so a bad value is refused by
the parser before any work, with a message naming the option and the value it got.

argparse reports ``argument --threads: must be at least 1 (got 0)``, exit 2.
"""

from __future__ import annotations

import argparse
import math


def _int(text: str) -> int:
    try:
        return int(text, 10)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def int_at_least(low: int, high: int | None = None):
    """An integer in [low, high]; the bound is in the message."""

    def check(text: str) -> int:
        value = _int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low} (got {value})")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high} (got {value})")
        return value

    check.__name__ = f"integer >= {low}"
    return check


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
# Beyond these a run is not slow but absurd (a typo): refused rather than started.
threads = int_at_least(1, 1024)
beam = int_at_least(1, 64)
max_new_tokens = int_at_least(1, 4096)
seed = int_at_least(0, 2**32 - 1)


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite (got {text})")
    return value


def variant_name(text: str) -> str:
    """An ONNX variant's name becomes part of file names: letters, digits, '-' and '_' only."""
    from .runtime.onnx_layout import check_variant_name

    if text[:1] in ("-", "_"):
        raise argparse.ArgumentTypeError(f"variant name {text!r}: must start with a letter or digit")
    if len(text) > 64:
        raise argparse.ArgumentTypeError(f"variant name of {len(text)} characters: at most 64")
    try:
        return check_variant_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_calib_clips(parser: argparse.ArgumentParser) -> None:
    """``--calib-clips N`` (quantize, export): one definition, since both quantize by a recipe."""
    parser.add_argument("--calib-clips", type=positive_int, metavar="N",
                        help="calibration clips to use, spread over --calib's manifest (default: the recipe's "
                             "[calibration] clips)")
