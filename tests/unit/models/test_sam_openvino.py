from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from medseg.core import ConfigError, ModelError
from medseg.evaluation import compute_dice
from medseg.sam import (
    EncoderBackend,
    Precision,
    SamPrompt,
    embed_image,
    load_sam_model,
    predict_prompts,
)
from medseg.sam import _openvino as ov_module
from medseg.sam._model import _choose_encoder_backend


class _TinyEncoder(nn.Module):
    """A small conv net standing in for an image encoder: (1, 3, 32, 32) → (1, 8, 8, 8)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.GELU(), nn.Conv2d(8, 8, 3, 2, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _build(tmp_path: Path) -> ov_module.OpenVinoImageEncoder:
    return ov_module.build_openvino_encoder(
        _TinyEncoder().eval(), image_size=32, weights_key="ab" * 32, cache_dir=tmp_path
    )


def test_fp32_output_equals_torch_and_bf16_under_autocast(tmp_path: Path) -> None:
    encoder = _build(tmp_path)
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = _TinyEncoder().eval()(image)
    assert torch.allclose(encoder(image), expected, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = encoder(image)
    assert bf16.dtype == torch.float32
    assert torch.allclose(bf16, expected, atol=0.05)
    assert set(encoder._compiled) == {"f32", "bf16"}


def test_conversion_is_cached_and_a_damaged_cache_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _build(tmp_path)
    ir_path = first.ir_path
    assert ir_path.is_file()
    assert ir_path.with_suffix(".bin").is_file()
    assert not list(ir_path.parent.glob(".tmp-*"))

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("converted again although cached")

    monkeypatch.setattr(ov_module, "_convert_to_ir", fail)
    assert _build(tmp_path).ir_path == ir_path
    monkeypatch.undo()
    ir_path.write_text("not an IR")
    rebuilt = _build(tmp_path)
    assert rebuilt(torch.rand(1, 3, 32, 32)).shape == (1, 8, 8, 8)


def test_unwritable_cache_is_a_model_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ModelError, match="cannot write the OpenVINO encoder cache"):
        _build(blocker)


def test_backend_choice() -> None:
    assert _choose_encoder_backend("auto", torch.device("cpu")) is EncoderBackend.OPENVINO
    assert _choose_encoder_backend("auto", torch.device("cuda")) is EncoderBackend.TORCH
    assert _choose_encoder_backend("torch", torch.device("cpu")) is EncoderBackend.TORCH
    with pytest.raises(ModelError, match="runs on the CPU"):
        _choose_encoder_backend("openvino", torch.device("cuda"))
    with pytest.raises(ConfigError, match="did you mean 'openvino'"):
        _choose_encoder_backend("openvin", torch.device("cpu"))


def test_litemedsam_openvino_masks_equal_torch_fp32() -> None:
    reference = load_sam_model("litemedsam", device="cpu", encoder_backend="torch")
    fast = load_sam_model("litemedsam", device="cpu", encoder_backend="openvino")
    assert fast.encoder_backend == "openvino"
    assert reference.compiled_encoder is None
    rows, columns = 240, 300
    yy, xx = np.mgrid[:rows, :columns]
    blob = ((yy - 120) / 50.0) ** 2 + ((xx - 170) / 70.0) ** 2 < 1
    image = np.where(blob, 0.8, 0.2) + np.random.default_rng(1).normal(0, 0.05, (rows, columns))
    box = SamPrompt(box_xyxy=(95.0, 65.0, 245.0, 175.0))
    expected = embed_image(reference, image)
    ref_mask = predict_prompts(reference, expected, [box])[0].best_mask()
    for precision in (Precision.FP32, Precision.BF16):
        embedding = embed_image(fast, image, precision=precision)
        cosine = torch.nn.functional.cosine_similarity(
            embedding.features.flatten(), expected.features.flatten(), dim=0
        )
        assert cosine > (0.9999 if precision is Precision.FP32 else 0.995)
        mask = predict_prompts(fast, embedding, [box])[0].best_mask()
        assert compute_dice(mask, ref_mask) > 0.99
