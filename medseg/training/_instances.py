"""Targets for instance segmenters (Mask R-CNN) from instance label maps."""

from __future__ import annotations

import numpy as np
import torch


def compute_instance_targets(
    instances: np.ndarray, *, class_id: int = 1
) -> dict[str, torch.Tensor]:
    """torchvision detection targets from an instance map.

    Parameters
    ----------
    instances
        ``(H, W)`` integer map: 0 background, 1..N one object each (any ids).
    class_id
        Class given to every object (1 for a single-class dataset).

    Returns
    -------
    dict
        ``boxes`` ``(N, 4)`` float32 as ``(x0, y0, x1, y1)`` in pixels (x along axis 1),
        ``labels`` ``(N,)`` int64, ``masks`` ``(N, H, W)`` uint8.
    """
    ids = [int(i) for i in np.unique(instances) if i != 0]
    masks = np.stack([instances == i for i in ids]) if ids else np.zeros((0, *instances.shape))
    boxes = []
    for mask in masks:
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
    return {
        "boxes": torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)),
        "labels": torch.full((len(ids),), class_id, dtype=torch.int64),
        "masks": torch.as_tensor(masks.astype(np.uint8)),
    }
