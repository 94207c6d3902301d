"""One precision vocabulary and one autocast helper for inference, SAM and training."""

from __future__ import annotations

import contextlib

import pytest
import torch

from medseg.core import ConfigError
from medseg.inference import ComputePrecision, InferConfig
from medseg.models import Precision, build_autocast, resolve_precision
from medseg.sam import Precision as SamPrecision
from medseg.sam import SamSegmentConfig

CPU = torch.device("cpu")


def test_one_enum_everywhere() -> None:
    assert ComputePrecision is Precision
    assert SamPrecision is Precision
    assert InferConfig().precision is Precision.AUTO


def test_auto_is_fp32_on_cpu() -> None:
    assert resolve_precision("auto", CPU) is Precision.FP32
    assert resolve_precision(Precision.BF16, CPU) is Precision.BF16
    assert isinstance(build_autocast(CPU, Precision.AUTO), contextlib.nullcontext)
    assert isinstance(build_autocast(CPU, "fp32"), contextlib.nullcontext)


def test_bf16_autocasts_matmuls_on_cpu() -> None:
    a = torch.ones(4, 4)
    with build_autocast(CPU, Precision.BF16):
        assert (a @ a).dtype == torch.bfloat16
    assert (a @ a).dtype == torch.float32


def test_fp16_needs_cuda() -> None:
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        build_autocast(CPU, Precision.FP16)


def test_sam_encoders_take_fp32_or_bf16_only() -> None:
    assert SamSegmentConfig(precision="bf16").precision is Precision.BF16
    for value in ("fp16", "auto"):
        with pytest.raises(ValueError, match="precision must be fp32 or bf16"):
            SamSegmentConfig(precision=value)
