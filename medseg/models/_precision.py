"""Numeric precision of a forward pass, and the one autocast helper every stage uses.

``auto`` is fp32 on CPU (bf16 autocast is opt-in there: faster, not equal) and, on CUDA,
bf16 where supported, else fp16. Accumulation and outputs stay float32 in every case.
"""

from __future__ import annotations

import contextlib
import enum
from typing import Annotated

import torch
from pydantic import AfterValidator

from medseg.core import ConfigError


class Precision(str, enum.Enum):
    """Arithmetic of a network's forward pass (``auto``: fp32 on CPU, bf16/fp16 on CUDA)."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


def resolve_precision(precision: Precision | str, device: torch.device) -> Precision:
    """The precision ``auto`` stands for on ``device`` (others are returned as given)."""
    precision = Precision(precision)
    if precision is not Precision.AUTO:
        return precision
    if device.type != "cuda":
        return Precision.FP32
    return Precision.BF16 if torch.cuda.is_bf16_supported() else Precision.FP16


def build_autocast(
    device: torch.device, precision: Precision | str
) -> contextlib.AbstractContextManager:
    """The autocast context of ``precision`` on ``device`` (a no-op for fp32).

    Raises ConfigError for fp16 on a device other than CUDA.
    """
    precision = resolve_precision(precision, device)
    if precision is Precision.FP32:
        return contextlib.nullcontext()
    if precision is Precision.FP16 and device.type != "cuda":
        raise ConfigError("precision fp16 needs CUDA; use bf16 or fp32 on CPU")
    dtype = torch.bfloat16 if precision is Precision.BF16 else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _fp32_or_bf16(precision: Precision) -> Precision:
    if precision not in (Precision.FP32, Precision.BF16):
        raise ValueError(f"precision must be fp32 or bf16, not {precision.value!r}")
    return precision


#: A config field taking fp32 or bf16 only (SAM image encoders).
EncoderPrecision = Annotated[Precision, AfterValidator(_fp32_or_bf16)]
