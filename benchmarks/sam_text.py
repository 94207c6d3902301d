"""Text-prompted CT organs: located box vs exact box, on CTs the atlas never saw.

For each case and organ with a reference label, on the same slice embeddings:

- ``atlas``: the atlas label registered onto the CT (``medseg.anatomy.register_atlas``), no SAM.
- ``located``: SAM 3D-box propagation from the located box (the registered atlas label fitted
  to the CT's own organ intensities, no margin), kept inside the box's slices, drawn again
  with mask prompts when under half the located volume and cut to the organ's own region
  (when several organs are located): the default of ``medseg sam --text`` and the
  ``sam_text`` segmenter.
- ``located, 5 mm margin``: the same with a 5 mm margin around the box (the default before
  2026-12-04).
- ``atlas box``: SAM from the registered atlas label's box, not fitted (``--variants``).
- ``exact``: SAM from the reference label's exact 3D box (the ceiling; the ``--box`` path).

The atlas is ``data/ct_totalsegmentator/example_ct_sm.nii.gz`` with ``example_seg.nii.gz``; the
cases are CTs other than the atlas: the TotalSegmentator DICOM example (silver labels), the
MSD spleen crop (manual spleen) and 3D-IRCADb patient 17 (manual liver; CC BY-NC-ND, read
from ``../shared/data`` and never committed). Dice and HD95 (mm) per organ; times per case
(wall, on a shared machine: upper bounds).

Run: ``PYTHONPATH=. nice -n 10 python benchmarks/sam_text.py [--shared ../shared/data]
[--cases dicom msd ircad] [--variants located exact] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from medseg.anatomy import (
    Atlas,
    LocatorConfig,
    Vocabulary,
    load_atlas,
    locate_structures,
    register_atlas,
)
from medseg.evaluation import compute_dice, compute_surface_distances
from medseg.io import axis_codes, check_same_grid, read_image, reorient
from medseg.sam import (
    IntensityConfig,
    IntensityMode,
    ObjectPrompt,
    SamSegmentConfig,
    TextSegmentConfig,
    build_slice_stack,
    labels_to_file_grid,
    load_sam_model,
    prompts_from_boxes,
    propagate_prompt,
    region_to_display,
    to_display_volume,
)
from medseg.sam._volume import _display_prompt  # the CLI's own prompt mapping

ROOT = Path(__file__).resolve().parent.parent
ATLAS = ROOT / "data" / "ct_totalsegmentator"


def _cases(shared: Path) -> dict[str, tuple[Path, Path, dict[str, int], str]]:
    """case → (image, reference labels, organ → reference value, reference kind)."""
    return {
        "dicom": (
            ATLAS / "example_ct_dicom",
            ATLAS / "example_seg_dicom.nii.gz",
            {"liver": 5, "spleen": 1},
            "silver (TotalSegmentator)",
        ),
        "msd": (
            ROOT / "data" / "ct_msd_spleen" / "sub-spleen2_ct.nii.gz",
            ROOT / "data" / "ct_msd_spleen" / "sub-spleen2_ct_seg-manual.nii.gz",
            {"spleen": 1},
            "manual",
        ),
        "ircad": (
            shared / "ct_ircad" / "ircad_1.17_ct.nii.gz",
            shared / "ct_ircad" / "ircad_1.17_label.nii.gz",
            {"liver": 1},
            "manual",
        ),
    }


def _load_atlas() -> Atlas:
    return load_atlas(ATLAS)


def _exact_box(mask: np.ndarray) -> tuple[float, ...]:
    where = np.nonzero(mask)
    return tuple(float(v) for v in [*(w.min() for w in where), *(w.max() for w in where)])


def _score(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    dice = compute_dice(pred, ref)
    if pred.any():
        hd95 = compute_surface_distances(pred, ref, spacing_mm=spacing).compute_hausdorff_mm(
            percentile=95
        )
    else:
        hd95 = float("inf")
    return {"dice": round(float(dice), 4), "hd95_mm": round(float(hd95), 2)}


def _propagate(stack, prompt, propagation):
    return propagate_prompt(
        stack,
        key_slice=prompt.key_slice,
        prompt=prompt.prompt,
        first_slice=prompt.first_slice,
        last_slice=prompt.last_slice,
        bounding_box_xyxy=prompt.bounding_box_xyxy,
        config=propagation,
    )


def run_case(
    case: str, paths: tuple, model, atlas: Atlas, config: SamSegmentConfig, variants: list[str]
) -> dict:
    image_path, ref_path, organs, kind = paths
    volume = read_image(image_path)
    # The reference on the image's own grid (the DICOM case's labels are stored flipped in j).
    reference = reorient(read_image(ref_path), axis_codes(volume))
    check_same_grid(volume, reference, what="reference labels")
    reference = reference.array
    spacing = volume.spacing_mm
    concepts = [Vocabulary().match(organ, modality="CT") for organ in organs]
    start = time.perf_counter()
    boxes = locate_structures(volume, list(organs), atlas=atlas)
    locate_s = time.perf_counter() - start
    others = {
        "located, 5 mm margin": LocatorConfig(margin_mm=5.0),
        "atlas box": LocatorConfig(refine=False),
    }
    other_boxes = {
        name: locate_structures(volume, list(organs), atlas=atlas, config=locator)
        for name, locator in others.items()
        if name in variants
    }
    warped = register_atlas(volume, atlas).array
    values = {v: k for k, v in atlas.names.items()}
    display = to_display_volume(volume)
    stack = build_slice_stack(
        model, display, config.intensity, precision=config.precision, max_cached=4096
    )
    n_slices = stack.n_slices
    # as `medseg sam --text` draws them: each organ inside its own region, drawn again with
    # mask prompts when SAM drew under half its located volume
    voxel_ml = float(np.prod(spacing[:3])) / 1000.0
    redraw_below = TextSegmentConfig().redraw_below
    prompts = {
        "located": prompts_from_boxes(
            concepts, boxes, n_slices=n_slices, voxel_ml=voxel_ml, redraw_below=redraw_below
        ),
        **{
            name: prompts_from_boxes(concepts, found, n_slices=n_slices)
            for name, found in other_boxes.items()
        },
        "exact": [
            ObjectPrompt(label=i + 1, box_ijk=_exact_box(reference == v), propagate=True)  # type: ignore[arg-type]
            for i, v in enumerate(organs.values())
        ],
    }
    rows = []
    seconds = {}
    for organ, value in organs.items():
        ref = reference == value
        row = {"case": case, "reference": kind, "organ": organ}
        row["atlas"] = _score(warped == values[organ], ref, spacing)
        row["box_located"] = list(boxes[organ].box_ijk) if organ in boxes else None
        row["box_exact"] = [int(v) for v in _exact_box(ref)]
        rows.append(row)
    for name in variants:
        t0 = time.perf_counter()
        for obj in prompts[name]:
            organ = list(organs)[obj.label - 1]
            prompt = _display_prompt(obj, display, n_slices)
            masks = _propagate(stack, prompt, config.propagation).masks
            if masks.sum() < obj.min_voxels:
                with_masks = config.propagation.model_copy(update={"use_mask_prompt": True})
                again = _propagate(stack, prompt, with_masks).masks
                print(f"{case} {organ}: {masks.sum()} voxels, drawn again: {again.sum()}")
                masks = again if again.sum() > masks.sum() else masks
            if obj.region_ijk is not None:
                masks = masks & region_to_display(obj.region_ijk, display, volume)
            labels = labels_to_file_grid(masks.astype(np.uint16), display, volume).array
            row = next(r for r in rows if r["organ"] == organ)
            row[name] = _score(labels > 0, reference == organs[organ], spacing)
        seconds[name] = round(time.perf_counter() - t0, 1)
    return {
        "case": case,
        "shape": list(volume.spatial_shape),
        "spacing_mm": [round(s, 3) for s in spacing],
        "locate_s": round(locate_s, 1),
        "slices_encoded": stack.n_encoded,
        "seconds": seconds,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cases", nargs="+", default=["dicom", "msd", "ircad"])
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["located", "located, 5 mm margin", "exact"],
        choices=["located", "located, 5 mm margin", "atlas box", "exact"],
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    config = SamSegmentConfig(intensity=IntensityConfig(mode=IntensityMode.CT))
    model = load_sam_model(config.model, device="cpu")
    atlas = _load_atlas()
    cases = _cases(args.shared)
    results = []
    for case in args.cases:
        t0 = time.perf_counter()
        result = run_case(case, cases[case], model, atlas, config, args.variants)
        result["total_s"] = round(time.perf_counter() - t0, 1)
        results.append(result)
        print(json.dumps(result), flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    kinds = ("atlas", *args.variants)
    print("| case | organ | reference | " + " | ".join(kinds) + " |")
    print("|---|---|---|" + "---|" * len(kinds))
    for result in results:
        for row in result["rows"]:
            cells = [
                f"{row[k]['dice']:.3f} / {row[k]['hd95_mm']:.1f}" if k in row else "not found"
                for k in kinds
            ]
            print(f"| {row['case']} | {row['organ']} | {row['reference']} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
