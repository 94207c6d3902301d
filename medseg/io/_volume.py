"""The geometry-carrying image type shared by every stage."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medseg.core import GeometryError

#: Flip between DICOM/ITK patient coordinates (LPS+) and NIfTI/nibabel world (RAS+).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Volume:
    """An image array with the affine that places each voxel in the world.

    Attributes
    ----------
    array
        Voxel data, axes ``(i, j, k)`` in file order (for DICOM: column, row, slice), with
        any channel axis last.
    affine
        4×4 matrix mapping voxel indices ``(i, j, k, 1)`` to RAS+ world coordinates in mm
        (the nibabel/MONAI convention).
    metadata
        Non-identifying facts about the source (modality, series description …); never PHI.
    """

    array: np.ndarray
    affine: np.ndarray
    metadata: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise GeometryError(f"affine must be 4x4, not {affine.shape}")
        if self.array.ndim < 2:
            raise GeometryError(f"array must have at least 2 axes, not {self.array.ndim}")
        object.__setattr__(self, "affine", affine)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Shape of the three spatial axes (i, j, k)."""
        return tuple(int(n) for n in self.array.shape[:3])

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size along (i, j, k) in mm, from the affine's column norms."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(norms[0]), float(norms[1]), float(norms[2]))

    def with_array(self, array: np.ndarray) -> Volume:
        """Return a Volume on the same grid holding ``array`` (spatial shape must match)."""
        if tuple(array.shape[:3]) != self.spatial_shape:
            raise GeometryError(
                f"array spatial shape must be {self.spatial_shape}, not {tuple(array.shape[:3])}"
            )
        return Volume(array=array, affine=self.affine.copy(), metadata=dict(self.metadata))


def check_same_grid(
    first: Volume, second: Volume, *, tolerance_mm: float = 1e-3, what: str = "mask"
) -> None:
    """Raise GeometryError unless both volumes share spatial shape and affine (within mm).

    Strict: the same grid in another axis order fails here. To compare masks from other
    tools, use :func:`medseg.io.reorient_like`, which matches axis order and flips exactly.
    """
    if first.spatial_shape != second.spatial_shape:
        raise GeometryError(
            f"{what} grid must match the image: shape {second.spatial_shape} "
            f"vs image {first.spatial_shape}"
        )
    worst = float(np.max(np.abs(first.affine - second.affine)))
    if worst > tolerance_mm:
        raise GeometryError(
            f"{what} affine differs from the image by up to {worst:.4g} mm "
            f"(tolerance {tolerance_mm} mm); resample it onto the image grid first"
        )
