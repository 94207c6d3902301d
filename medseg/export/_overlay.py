"""PNG overlays: a 2D image with mask contours and a legend, for quick review."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.core import GeometryError, atomic_output


def write_contour_overlay(
    image: np.ndarray,
    masks: Sequence[tuple[str, np.ndarray, str]],
    path: str | Path,
    *,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a PNG of ``image`` (row, column; values in [0, 1]) with one contour per mask.

    Parameters
    ----------
    image
        2D display image, row 0 at the top.
    masks
        ``(legend name, binary mask of the image's shape, matplotlib colour)`` triples.
    path
        Output PNG path; written atomically.
    title
        Optional title (never PHI).
    overwrite
        Replace an existing file.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.lines import Line2D

    if image.ndim != 2:
        raise GeometryError(f"overlay image must be 2D, not {image.ndim}D")
    height, width = image.shape
    figure, axes = plt.subplots(figsize=(6, 6 * height / width), dpi=100)
    axes.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    handles = []
    for name, mask, colour in masks:
        if mask.shape != image.shape:
            raise GeometryError(
                f"mask {name!r} must have the image's shape {image.shape}, not {mask.shape}"
            )
        if mask.any():
            axes.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.2)
        handles.append(Line2D([0], [0], color=colour, lw=2, label=name))
    if handles:
        axes.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.7)
    if title:
        axes.set_title(title, fontsize=9)
    axes.set_axis_off()
    figure.tight_layout()
    with atomic_output(path, overwrite=overwrite) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
    return Path(path)
