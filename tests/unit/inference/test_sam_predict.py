from __future__ import annotations

import numpy as np
import pytest

from medseg.core import InputError
from medseg.evaluation import compute_dice
from medseg.sam import (
    ClickSearchConfig,
    ImageEmbedding,
    PointStrategy,
    PropagationConfig,
    SamModel,
    SamPrompt,
    SliceStack,
    embed_image,
    load_sam_model,
    mask_to_prompt_logits,
    predict_object,
    predict_prompts,
    search_box_for_clicks,
)
from medseg.sam._clicks import click_search_boxes

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


def test_an_off_centre_click_finds_the_clicked_disk(
    litemedsam: SamModel, embedding: ImageEmbedding, disks: tuple
) -> None:
    # LiteMedSAM was trained on boxes only: a click is turned into the best of a batch of
    # candidate boxes around it (PointStrategy.box_search, the default for LiteMedSAM).
    stack = SliceStack(litemedsam, disks[0][None].astype(np.float32))
    stack._cache[0] = embedding
    for ((row, column), radius), mask in zip(DISKS, disks[1], strict=True):
        click = (column + 0.5 * radius, row - 0.5 * radius)  # 0.7 radius from the centre
        prompt = SamPrompt(points_xy=(click,), point_labels=(1,))
        predicted, low_res, iou = predict_object(stack, 0, prompt)
        assert compute_dice(predicted, mask) > 0.9
        assert low_res.shape == (256, 256)
        assert 0.0 < iou <= 1.5


def test_the_old_grow_box_strategy_stays_inside_the_disk(
    litemedsam: SamModel, embedding: ImageEmbedding, disks: tuple
) -> None:
    # Kept for comparison: a small box grown where the mask touches it never frames the disk.
    stack = SliceStack(litemedsam, disks[0][None].astype(np.float32))
    stack._cache[0] = embedding
    (row, column), _ = DISKS[1]
    prompt = SamPrompt(points_xy=((column, row),), point_labels=(1,))
    config = PropagationConfig(point_strategy=PointStrategy.GROW_BOX)
    grown, _, _ = predict_object(stack, 0, prompt, config=config)
    searched, _, _ = predict_object(stack, 0, prompt)
    assert compute_dice(searched, disks[1][1]) > compute_dice(grown, disks[1][1])


def test_background_clicks_veto_masks_that_hold_them(
    litemedsam: SamModel, embedding: ImageEmbedding, disks: tuple
) -> None:
    # Foreground click on the left disk, background click on the right one: whatever box
    # wins, its mask must not reach the background click.
    (row, column), _ = DISKS[0]
    (row2, column2), _ = DISKS[1]
    points = ((float(column), float(row)), (float(column2), float(row2)))
    prediction, box = search_box_for_clicks(litemedsam, embedding, points, (1, 0))
    mask = prediction.logits[0] > 0
    assert mask[row, column]
    assert not mask[row2, column2]
    assert box[0] <= column <= box[2]
    assert box[1] <= row <= box[3]
    assert compute_dice(mask, disks[1][0]) > 0.9


def test_click_search_boxes_hold_every_foreground_click() -> None:
    points = ((10.0, 12.0), (30.0, 20.0), (90.0, 90.0))
    boxes = click_search_boxes(points, (1, 1, 0), (100, 120), ClickSearchConfig())
    assert len(boxes) > 10
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 <= 10 - 3
        assert 0 <= y0 <= 12 - 3
        assert 30 + 3 <= x1 <= 119
        assert 20 + 3 <= y1 <= 99
    with pytest.raises(InputError, match="foreground"):
        click_search_boxes(((5.0, 5.0),), (0,), (100, 120), ClickSearchConfig())
    with pytest.raises(ValueError, match="max_size_fraction"):
        ClickSearchConfig(min_size_fraction=0.5, max_size_fraction=0.2)


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


@pytest.mark.parametrize("shape", [(512, 512), (300, 700), (1000, 37), (33, 4000)])
def test_encoder_size_and_prompt_scaling_follow_segment_anything(shape: tuple[int, int]) -> None:
    import torch
    from segment_anything.utils.transforms import ResizeLongestSide

    from medseg.sam._predict import ImageEmbedding, _resized_size

    class _Model:
        image_size = 1024

    rows, columns = shape
    resized = _resized_size(_Model(), rows, columns)  # type: ignore[arg-type]
    assert resized == ResizeLongestSide.get_preprocess_shape(rows, columns, 1024)
    # the embedding's per-axis factors equal segment_anything's prompt transform
    embedding = ImageEmbedding(torch.zeros(1), original_size=shape, resized_size=resized)
    box = torch.tensor([[3.0, 5.0, columns - 1.0, rows - 2.0]])
    sx, sy = embedding.scale_xy
    expected = ResizeLongestSide(1024).apply_boxes_torch(box, shape)
    assert torch.allclose(box * torch.tensor([sx, sy, sx, sy]), expected)


def test_a_very_thin_image_keeps_one_encoder_row() -> None:
    from medseg.sam._predict import _resized_size

    class _Model:
        image_size = 1024

    assert _resized_size(_Model(), 1, 5000) == (1, 1024)  # type: ignore[arg-type]
