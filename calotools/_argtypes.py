"""Argument types of the command line that refuse non-positive values by name.

argparse reports the option with the message, e.g. ``argument --patience: must
be at least 1, got 0``, and exits with status 2 before any work.
"""

from __future__ import annotations

import argparse
import math

__all__ = ["non_negative_float", "positive_float", "positive_int"]


def positive_int(text: str) -> int:
    """``text`` as a whole number of at least 1.

    >>> positive_int("3")
    3
    """
    try:
        value = int(text)
    except ValueError:
        msg = f"expected a whole number of at least 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if value < 1:
        msg = f"must be at least 1, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def positive_float(text: str) -> float:
    """``text`` as a finite number above 0.

    >>> positive_float("1e-3")
    0.001
    """
    try:
        value = float(text)
    except ValueError:
        msg = f"expected a number above 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not (math.isfinite(value) and value > 0):
        msg = f"must be a finite number above 0, got {text}"
        raise argparse.ArgumentTypeError(msg)
    return value


def non_negative_float(text: str) -> float:
    """``text`` as a finite number of at least 0.

    >>> non_negative_float("40")
    40.0
    """
    try:
        value = float(text)
    except ValueError:
        msg = f"expected a number of at least 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not (math.isfinite(value) and value >= 0):
        msg = f"must be a finite number of at least 0, got {text}"
        raise argparse.ArgumentTypeError(msg)
    return value
