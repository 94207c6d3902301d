from __future__ import annotations

import numpy as np
import pytest

from medseg.core import InputError
from medseg.evaluation import compute_dice
from medseg.inference import (
    ImageEmbedding,
    SamPrompt,
    SliceStack,
    embed_image,
    mask_to_prompt_logits,
    predict_object,
    predict_prompts,
)
from medseg.models import SamModel, load_sam_model

ROWS, COLUMNS = 200, 280
DISKS = (((60, 80), 30), ((130, 200), 40))  # ((row, column), radius)


@pytest.fixture(scope="module")
def litemedsam() -> SamModel:
    return load_sam_model("litemedsam", device="cpu")


@pytest.fixture(scope="module")
def disks() -> tuple[np.ndarray, list[np.ndarray]]:
    yy, xx = np.mgrid[:ROWS, :COLUMNS]
    masks = [(yy - r) ** 2 + (xx - c) ** 2 < radius**2 for (r, c), radius in DISKS]
    image = np.where(masks[0] | masks[1], 0.85, 0.15)
    image = image + np.random.default_rng(1).normal(0, 0.02, image.shape)
    return image, masks


@pytest.fixture(scope="module")
def embedding(litemedsam: SamModel, disks: tuple) -> ImageEmbedding:
    return embed_image(litemedsam, disks[0])


def _box(centre: tuple[int, int], radius: int, margin: int = 6) -> tuple[float, ...]:
    row, column = centre
    return (
        column - radius - margin,
        row - radius - margin,
        column + radius + margin,
        row + radius + margin,
    )


def test_batched_box_prompts_equal_single_prompts(
    litemedsam: SamModel, embedding: ImageEmbedding, disks: tuple
) -> None:
    prompts = [SamPrompt(box_xyxy=_box(c, r)) for c, r in DISKS]
    batched = predict_prompts(litemedsam, embedding, prompts)
    for prompt, prediction, mask in zip(prompts, batched, disks[1], strict=True):
        (single,) = predict_prompts(litemedsam, embedding, [prompt])
        np.testing.assert_allclose(prediction.logits, single.logits, atol=1e-3)
        assert prediction.logits.shape == (1, ROWS, COLUMNS)
        assert compute_dice(prediction.logits[0] > 0, mask) > 0.9


def test_multimask_output_has_three_scored_masks(
    litemedsam: SamModel, embedding: ImageEmbedding
) -> None:
    (centre, radius), _ = DISKS
    (prediction,) = predict_prompts(
        litemedsam, embedding, [SamPrompt(box_xyxy=_box(centre, radius))], multimask_output=True
    )
    assert prediction.logits.shape == (3, ROWS, COLUMNS)
    assert prediction.iou_scores.shape == (3,)
    assert prediction.low_res_logits.shape == (3, 256, 256)
    assert np.all(np.isfinite(prediction.iou_scores))
    best = prediction.best_index
    np.testing.assert_array_equal(prediction.best_mask(), prediction.logits[best] > 0)


@pytest.mark.xfail(
    strict=True,
    reason="known limitation: LiteMedSAM gives no usable mask from a click; the grown box "
    "starts inside the disk and the mask does not reach its rim (README, medseg sam)",
)
def test_a_click_grows_a_box_over_the_clicked_disk(
    litemedsam: SamModel, embedding: ImageEmbedding, disks: tuple
) -> None:
    # LiteMedSAM was trained on boxes only: a click seeds a box that grows until the mask
    # stops running into its sides (PointStrategy.grow_box, the default for LiteMedSAM).
    stack = SliceStack(litemedsam, disks[0][None].astype(np.float32))
    stack._cache[0] = embedding
    for (row, column), mask in zip((c for c, _ in DISKS), disks[1], strict=True):
        prompt = SamPrompt(points_xy=((column, row),), point_labels=(1,))
        predicted, _, _ = predict_object(stack, 0, prompt)
        assert compute_dice(predicted, mask) > 0.85


def test_mixed_prompt_structures_batch_like_single_calls(
    litemedsam: SamModel, embedding: ImageEmbedding, disks: tuple
) -> None:
    (centre, radius), (centre2, radius2) = DISKS
    mask_prompt = mask_to_prompt_logits(litemedsam, embedding, disks[1][1])
    assert mask_prompt.shape == (256, 256)
    assert mask_prompt[0, 0] < 0 < mask_prompt[int(130 * 256 / 280), int(200 * 256 / 280)]
    prompts = [
        SamPrompt(
            box_xyxy=_box(centre2, radius2),
            points_xy=((centre2[1], centre2[0]), (5.0, 5.0)),
            point_labels=(1, 0),
        ),
        SamPrompt(box_xyxy=_box(centre2, radius2), mask_logits=mask_prompt),
        SamPrompt(box_xyxy=_box(centre, radius)),
        SamPrompt(box_xyxy=_box(centre2, radius2)),
    ]
    together = predict_prompts(litemedsam, embedding, prompts)
    for prompt, prediction in zip(prompts, together, strict=True):
        (alone,) = predict_prompts(litemedsam, embedding, [prompt])
        np.testing.assert_allclose(prediction.logits, alone.logits, atol=1e-3)
    assert compute_dice(together[2].logits[0] > 0, disks[1][0]) > 0.9
    assert compute_dice(together[3].logits[0] > 0, disks[1][1]) > 0.9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs a box, points or a mask"),
        ({"box_xyxy": (10, 10, 5, 20)}, "x0 <= x1"),
        ({"points_xy": ((1, 2),), "point_labels": ()}, "each point needs a label"),
        ({"points_xy": ((1, 2),), "point_labels": (2,)}, "1 \\(foreground\\) or 0"),
    ],
)
def test_bad_prompts_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        SamPrompt(**kwargs)


def test_wrong_mask_prompt_shape_is_refused(
    litemedsam: SamModel, embedding: ImageEmbedding
) -> None:
    prompt = SamPrompt(box_xyxy=(1, 1, 50, 50), mask_logits=np.zeros((64, 64), np.float32))
    with pytest.raises(InputError, match=r"low-res logits of shape \(256, 256\)"):
        predict_prompts(litemedsam, embedding, [prompt])
