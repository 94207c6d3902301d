"""PNG overlays for quick review: one 2D image, or an axial/coronal/sagittal montage."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.core import GeometryError, atomic_output
from medseg.export._structures import Structure
from medseg.io import Volume, reorient, reorient_like
from medseg.transforms import CTWindow, apply_window, scale_percentiles


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


def _display_planes(
    image: np.ndarray, labels: np.ndarray, spacing_mm: tuple[float, float, float]
) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """Axial, coronal and sagittal planes through the label map's busiest slices.

    ``image`` and ``labels`` are in LPS orientation (i: right→left, j: anterior→posterior,
    k: inferior→superior). Returned planes are (row, column) images in radiological
    display (patient right on the image left, anterior/superior at the top) with the
    aspect ratio (row spacing / column spacing).
    """
    foreground = labels > 0
    k = int(np.argmax(foreground.sum(axis=(0, 1)))) if foreground.any() else labels.shape[2] // 2
    j = int(np.argmax(foreground.sum(axis=(0, 2)))) if foreground.any() else labels.shape[1] // 2
    i = int(np.argmax(foreground.sum(axis=(1, 2)))) if foreground.any() else labels.shape[0] // 2
    sx, sy, sz = spacing_mm
    return [
        (f"axial (slice {k})", image[:, :, k].T, labels[:, :, k].T, sy / sx),
        (
            f"coronal (row {j})",
            np.flipud(image[:, j, :].T),
            np.flipud(labels[:, j, :].T),
            sz / sx,
        ),
        (
            f"sagittal (column {i})",
            np.flipud(image[i, :, :].T),
            np.flipud(labels[i, :, :].T),
            sz / sy,
        ),
    ]


def write_overlay_montage(
    image: np.ndarray,
    labels: np.ndarray,
    spacing_mm: tuple[float, float, float],
    legend: Sequence[tuple[int, str, tuple[int, int, int]]],
    path: str | Path,
    *,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a PNG montage (axial, coronal, sagittal) with one contour colour per label.

    Parameters
    ----------
    image
        3D display image in [0, 1] (float), axes in LPS orientation (i: right→left,
        j: anterior→posterior, k: inferior→superior), e.g. a windowed CT.
    labels
        Integer label map on the same grid.
    spacing_mm
        Voxel size along (i, j, k) in mm, for the aspect ratio.
    legend
        ``(label value, name, RGB 0-255)`` per label to draw.
    path
        Output PNG, written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.lines import Line2D

    if image.ndim != 3 or image.shape != labels.shape:
        raise GeometryError(
            f"image and labels must be 3D of one shape, not {image.shape} and {labels.shape}"
        )
    planes = _display_planes(image, labels, spacing_mm)
    figure, axes = plt.subplots(1, 3, figsize=(15, 5.6), dpi=100)
    for axis, (name, plane, plane_labels, aspect) in zip(axes, planes, strict=True):
        axis.imshow(plane, cmap="gray", vmin=0.0, vmax=1.0, aspect=aspect, interpolation="nearest")
        for value, _, rgb in legend:
            region = plane_labels == value
            if region.any():
                axis.contour(
                    region.astype(np.float32),
                    levels=[0.5],
                    colors=[tuple(c / 255 for c in rgb)],
                    linewidths=0.9,
                )
        axis.set_title(name, fontsize=10)
        axis.set_axis_off()
    handles = [
        Line2D([0], [0], color=(r / 255, g / 255, b / 255), lw=2, label=f"{value} {name}")
        for value, name, (r, g, b) in legend
    ]
    if handles:
        figure.legend(
            handles=handles,
            loc="lower center",
            ncol=min(len(handles), 6),
            fontsize=7,
            frameon=False,
        )
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout(rect=(0, 0.04 + 0.025 * ((len(handles) + 5) // 6), 1, 1))
    with atomic_output(path, overwrite=overwrite) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
    return Path(path)


def write_volume_overlay(
    image: Volume,
    labels: Volume,
    structures: Sequence[Structure],
    path: str | Path,
    *,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the overlay montage of a label map on its image (both Volumes, any orientation).

    Both are reoriented to LPS (axis flips/permutations only); the label map must then lie
    on the image's grid. CT (metadata modality ``CT``) is shown in the abdomen window,
    anything else scaled between its 0.5th and 99.5th percentiles.
    """
    image_lps = reorient(image, "LPS")
    labels_lps = reorient_like(labels, image_lps, tolerance_mm=1e-2)
    array = image_lps.array
    if array.ndim == 4:  # colour or multichannel: show the first channel
        array = array[..., 0]
    if str(image.metadata.get("modality", "")).upper() == "CT":
        level, width = CTWindow.ABDOMEN.level_width_hu
        display = apply_window(array, level_hu=level, width_hu=width)
    else:
        display = scale_percentiles(array)
    legend = [(s.label_value, s.name, s.color_rgb) for s in structures]
    return write_overlay_montage(
        display,
        np.asarray(labels_lps.array),
        image_lps.spacing_mm,
        legend,
        path,
        title=title,
        overwrite=overwrite,
    )
