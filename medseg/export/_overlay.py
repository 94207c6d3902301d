"""PNG overlays for review: one 2D image, or an axial/coronal/sagittal montage.

Pictures a reader can trust: every panel keeps the physical aspect ratio of its voxels and
is drawn in radiological convention with its patient-direction letters at the edges
(R/L, A/P, S/I); contours lie on the image (in colour for colour images); the legend names
every structure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.core import GeometryError, atomic_output
from medseg.export._structures import Structure
from medseg.io import Volume, reorient, reorient_like
from medseg.transforms import CTWindow, apply_window, scale_percentiles

#: Patient-direction letters at the (left, right, top, bottom) edges of each display plane.
AXIAL_MARKERS = ("R", "L", "A", "P")
CORONAL_MARKERS = ("R", "L", "S", "I")
SAGITTAL_MARKERS = ("A", "P", "S", "I")

#: A contour: (legend name, binary mask, matplotlib colour[, line style]).
Contour = tuple[str, np.ndarray, object] | tuple[str, np.ndarray, object, str]


def _draw_markers(axis, markers: Sequence[str]) -> None:
    """Write the four direction letters at the panel's edges: left and right inside the
    image, top and bottom just outside it, so thin slabs keep their anatomy visible."""
    style = {
        "color": "white",
        "fontsize": 10,
        "fontweight": "bold",
        "bbox": {"facecolor": "black", "alpha": 0.6, "pad": 1.5, "edgecolor": "none"},
        "transform": axis.transAxes,
        "clip_on": False,
    }
    left, right, top, bottom = markers
    axis.text(0.005, 0.5, left, ha="left", va="center", **style)
    axis.text(0.995, 0.5, right, ha="right", va="center", **style)
    axis.text(0.5, 1.01, top, ha="center", va="bottom", **style)
    axis.text(0.5, -0.01, bottom, ha="center", va="top", **style)


def _show(axis, image: np.ndarray, aspect: float) -> None:
    """Draw a grey (row, column) or colour (row, column, 3) image in [0, 1]."""
    if image.ndim == 3:
        axis.imshow(np.clip(image, 0.0, 1.0), aspect=aspect, interpolation="nearest")
    else:
        axis.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, aspect=aspect, interpolation="nearest")


def _check_display_image(image: np.ndarray) -> tuple[int, int]:
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3):
        return image.shape[0], image.shape[1]
    raise GeometryError(
        f"overlay image must be 2D grey (row, column) or colour (row, column, 3), "
        f"not shape {image.shape}"
    )


def write_contour_overlay(
    image: np.ndarray,
    masks: Sequence[Contour],
    path: str | Path,
    *,
    title: str | None = None,
    markers: Sequence[str] | None = None,
    aspect: float = 1.0,
    overwrite: bool = False,
) -> Path:
    """Write a PNG of ``image`` with one contour per mask.

    Parameters
    ----------
    image
        Display image, row 0 at the top, values in [0, 1]: grey (row, column) or colour
        (row, column, 3), shown in colour.
    masks
        ``(legend name, binary mask of the image's (row, column) shape, matplotlib colour)``
        with an optional fourth item, a matplotlib line style (``"solid"``, ``"dashed"``).
    path
        Output PNG path; written atomically.
    title
        Optional title (never PHI).
    markers
        Patient-direction letters for the (left, right, top, bottom) edges, e.g.
        :data:`AXIAL_MARKERS`; None for images without a patient orientation.
    aspect
        Row spacing / column spacing, so the picture keeps the physical shape.
    overwrite
        Replace an existing file.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.lines import Line2D

    height, width = _check_display_image(image)
    figure, axes = plt.subplots(figsize=(6, max(6 * aspect * height / width, 2.0)), dpi=100)
    _show(axes, image, aspect)
    handles = []
    for contour in masks:
        name, mask, colour = contour[:3]
        style = contour[3] if len(contour) > 3 else "solid"
        if mask.shape != (height, width):
            raise GeometryError(
                f"mask {name!r} must have the image's shape {(height, width)}, not {mask.shape}"
            )
        if mask.any():
            axes.contour(
                mask.astype(np.float32),
                levels=[0.5],
                colors=[colour],
                linewidths=1.2,
                linestyles=[style],
            )
        handles.append(Line2D([0], [0], color=colour, lw=2, ls=style, label=name))
    if handles:
        axes.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.7)
    if markers is not None:
        _draw_markers(axes, markers)
    if title:
        axes.set_title(title, fontsize=9, loc="left")
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


def _montage_layout(
    shapes_aspects: Sequence[tuple[tuple[int, int], float]],
) -> tuple[str, tuple[float, float]]:
    """``"stacked"`` (axial left, coronal over sagittal right) or ``"row"``, and the figure
    size in inches for panels given as ((rows, columns), aspect).

    Each panel's physical height/width is rows·aspect/columns. Thin slabs (a few slices)
    give wide, low coronal and sagittal views: stacked beside the axial view they get its
    full width instead of shrinking to strips in a row of three.
    """
    ratios = [rows * aspect / columns for (rows, columns), aspect in shapes_aspects]
    axial, coronal, sagittal = ratios
    if coronal + sagittal <= 1.2 * axial:
        column = 6.5
        return "stacked", (2 * column + 0.6, column * max(axial, coronal + sagittal) + 1.0)
    widths = sum(1.0 / r for r in ratios)
    height = min(max(14.0 / widths, 3.5), 8.0)
    return "row", (min(height * widths + 0.6, 20.0), height + 1.0)


def _montage_figure(
    image: np.ndarray,
    labels: np.ndarray,
    spacing_mm: tuple[float, float, float],
    legend: Sequence[tuple[int, str, tuple[int, int, int]]],
    *,
    reference: np.ndarray | None,
    title: str | None,
):
    """The montage's matplotlib figure (see :func:`write_overlay_montage`)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.lines import Line2D

    if image.ndim != 3 or image.shape != labels.shape:
        raise GeometryError(
            f"image and labels must be 3D of one shape, not {image.shape} and {labels.shape}"
        )
    if reference is not None and reference.shape != labels.shape:
        raise GeometryError(
            f"reference must have the labels' shape {labels.shape}, not {reference.shape}"
        )
    planes = _display_planes(image, labels, spacing_mm)
    reference_planes = (
        [plane for _, _, plane, _ in _display_planes(image, reference, spacing_mm)]
        if reference is not None
        else [None, None, None]
    )
    layout, size = _montage_layout([(p.shape, aspect) for _, p, _, aspect in planes])
    figure = plt.figure(figsize=size, dpi=100)
    if layout == "stacked":
        _, coronal, _, coronal_aspect = planes[1]
        _, sagittal, _, sagittal_aspect = planes[2]
        grid = figure.add_gridspec(
            2,
            2,
            height_ratios=[
                coronal.shape[0] * coronal_aspect / coronal.shape[1],
                sagittal.shape[0] * sagittal_aspect / sagittal.shape[1],
            ],
        )
        axes = [figure.add_subplot(grid[:, 0]), figure.add_subplot(grid[0, 1])]
        axes.append(figure.add_subplot(grid[1, 1]))
    else:
        widths = [p.shape[1] / (p.shape[0] * aspect) for _, p, _, aspect in planes]
        grid = figure.add_gridspec(1, 3, width_ratios=widths)
        axes = [figure.add_subplot(grid[0, n]) for n in range(3)]
    markers = (AXIAL_MARKERS, CORONAL_MARKERS, SAGITTAL_MARKERS)
    for axis, (name, plane, plane_labels, aspect), plane_reference, plane_markers in zip(
        axes, planes, reference_planes, markers, strict=True
    ):
        _show(axis, plane, aspect)
        for value, _, rgb in legend:
            colour = tuple(c / 255 for c in rgb)
            for mask, style in ((plane_labels, "solid"), (plane_reference, "dashed")):
                if mask is None:
                    continue
                region = mask == value
                if region.any():
                    axis.contour(
                        region.astype(np.float32),
                        levels=[0.5],
                        colors=[colour],
                        linewidths=0.9,
                        linestyles=[style],
                    )
        _draw_markers(axis, plane_markers)
        axis.set_title(name, fontsize=10, loc="left")
        axis.set_axis_off()
    handles = [
        Line2D([0], [0], color=(r / 255, g / 255, b / 255), lw=2, label=f"{value} {name}")
        for value, name, (r, g, b) in legend
    ]
    if reference is not None:
        handles += [
            Line2D([0], [0], color="black", lw=1.5, label="prediction (solid)"),
            Line2D([0], [0], color="black", lw=1.5, ls="dashed", label="reference (dashed)"),
        ]
    rows = (len(handles) + 5) // 6
    if handles:
        figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8)
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout(rect=(0, min(0.045 * rows * 5.6 / size[1], 0.5), 1, 1))
    return figure


def write_overlay_montage(
    image: np.ndarray,
    labels: np.ndarray,
    spacing_mm: tuple[float, float, float],
    legend: Sequence[tuple[int, str, tuple[int, int, int]]],
    path: str | Path,
    *,
    reference: np.ndarray | None = None,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a PNG montage (axial, coronal, sagittal) with one contour colour per label.

    Every panel keeps the physical aspect ratio of the voxels and carries its direction
    letters (R/L, A/P, S/I); the planes cross the label map's busiest slices.

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
        ``(label value, name, RGB 0-255)`` per label to draw; only these are drawn.
    path
        Output PNG, written atomically.
    reference
        Optional reference label map on the same grid (same label values): its contours
        of the legend's labels are drawn dashed in the same colours.
    title
        Figure title (never PHI), e.g. the structures and the model.
    """
    from matplotlib import pyplot as plt

    figure = _montage_figure(image, labels, spacing_mm, legend, reference=reference, title=title)
    with atomic_output(path, overwrite=overwrite) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
    return Path(path)


def describe_structures(names: Sequence[str], *, limit: int = 3) -> str:
    """``"liver, spleen"``, or the first ``limit`` names and how many more, for titles."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} +{len(names) - limit} more"


def _display_volume(image_lps: Volume, modality: str) -> np.ndarray:
    """The image in [0, 1]: CT in the abdomen window, anything else by percentiles;
    colour (4D, 3 channels) kept in colour."""
    array = image_lps.array
    if array.ndim == 4 and array.shape[3] == 3:
        scale = 255.0 if array.dtype == np.uint8 else float(max(array.max(), 1))
        return np.clip(array.astype(np.float32) / scale, 0.0, 1.0)
    if array.ndim == 4:  # multichannel, not colour: show the first channel
        array = array[..., 0]
    if modality == "CT":
        level, width = CTWindow.ABDOMEN.level_width_hu
        return apply_window(array, level_hu=level, width_hu=width)
    return scale_percentiles(array)


def write_volume_overlay(
    image: Volume,
    labels: Volume,
    structures: Sequence[Structure],
    path: str | Path,
    *,
    reference: Volume | None = None,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the overlay of a label map on its image (both Volumes, any orientation).

    Both are reoriented to LPS (axis flips/permutations only); the label map (and the
    optional reference, drawn dashed) must then lie on the image's grid. CT (metadata
    modality ``CT``) is shown in the abdomen window, colour images in colour, anything else
    scaled between its 0.5th and 99.5th percentiles. A volume of several slices gives the
    three-plane montage; a single slice (a 2D image) one picture, in the image's own (row,
    column) layout and without direction letters. Only ``structures`` are drawn; the title
    defaults to their names.
    """
    image_lps = reorient(image, "LPS")
    labels_lps = np.asarray(reorient_like(labels, image_lps, tolerance_mm=1e-2).array)
    reference_lps = (
        np.asarray(reorient_like(reference, image_lps, tolerance_mm=1e-2).array)
        if reference is not None
        else None
    )
    modality = str(image.metadata.get("modality", "")).upper()
    display = _display_volume(image_lps, modality)
    legend = [(s.label_value, s.name, s.color_rgb) for s in structures]
    if title is None:
        title = describe_structures([s.name for s in structures])
    if display.shape[2] == 1:  # one slice: the 2D picture in its own orientation
        return _write_single_slice(
            image, labels, reference, structures, path, title=title, overwrite=overwrite
        )
    if display.ndim == 4:  # a colour volume: the montage shows its luminance
        display = display @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return write_overlay_montage(
        display,
        labels_lps,
        image_lps.spacing_mm,
        legend,
        path,
        reference=reference_lps,
        title=title,
        overwrite=overwrite,
    )


def _write_single_slice(
    image: Volume,
    labels: Volume,
    reference: Volume | None,
    structures: Sequence[Structure],
    path: str | Path,
    *,
    title: str,
    overwrite: bool,
) -> Path:
    """One-slice volumes (2D images): (row, column) = the file's (j, i), as it is read."""
    labels_here = np.asarray(reorient_like(labels, image, tolerance_mm=1e-2).array)
    reference_here = (
        np.asarray(reorient_like(reference, image, tolerance_mm=1e-2).array)
        if reference is not None
        else None
    )
    modality = str(image.metadata.get("modality", "")).upper()
    display = _display_volume(image, modality)[:, :, 0]
    display = np.swapaxes(display, 0, 1)  # (i, j[, c]) -> (row j, column i[, c])
    spacing = image.spacing_mm
    contours: list[Contour] = []
    for structure in structures:
        colour = tuple(c / 255 for c in structure.color_rgb)
        mask = structure.label_value == labels_here[:, :, 0].T
        contours.append((structure.name, mask, colour))
        if reference_here is not None:
            ref = structure.label_value == reference_here[:, :, 0].T
            contours.append((f"{structure.name} (reference)", ref, colour, "dashed"))
    return write_contour_overlay(
        display,
        contours,
        path,
        title=title,
        aspect=spacing[1] / spacing[0],
        overwrite=overwrite,
    )
