"""Accuracy and speed of box-prompted LiteMedSAM on the bundled real data.

Protocols (MedSAM's evaluation, with honest perturbation):

- ``box/slice``: on every slice holding the structure, a box from the reference mask,
  each side moved by a seeded random amount of up to 5 % of the box size.
- ``3D box``: one 3D box from the reference (in-plane sides perturbed as above, z range
  exact); the middle slice is prompted with the box's in-plane extent and the mask is
  propagated slice by slice within the z range (medseg.inference.propagate_prompt).
- ``key box``: one perturbed 2D box on the middle slice, propagated both ways with no
  bounds; propagation stops by itself (object vanished / confidence dropped).
- ``click``: one foreground click on the middle slice at a random pixel of the object's
  central part (distance to the border at least half the largest), turned into a mask by
  the box search (PointStrategy.box_search) and propagated like the key box.
- DSB nuclei: perturbed box per nucleus (all boxes of an image in one decoder batch), and
  the automatic mode (configs/sam/auto_cells.yaml) scored on the foreground.

Each structure gets ``--draws`` independent box draws (one seeded random stream per case,
structure and draw, so skipping cases does not change the others' boxes); the table shows
the mean Dice over the draws, the lowest one, and the mean NSD. Dice per structure over the
3D volume; NSD (normalised surface Dice at 2 mm for CT/MR,
1 px for nuclei) from DeepMind's ``surface-distance`` package. Speed: ms per slice for the
encoder (fp32 and bf16), per prompt for prompt encoder + decoder, and per click for the
box search, on the CPU.

Run: ``PYTHONPATH=. python benchmarks/sam_accuracy.py [--precision bf16] [--draws 5]
[--encoder-backend torch|openvino] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from medseg.core import load_config
from medseg.evaluation import compute_dice
from medseg.io import read_image, reorient, reorient_like
from medseg.sam import (
    IntensityConfig,
    Precision,
    PropagationConfig,
    SamModel,
    SamPrompt,
    SamSegmentConfig,
    SliceStack,
    box_from_mask,
    display_axis_codes,
    embed_image,
    load_sam_model,
    predict_prompts,
    propagate_prompt,
    scale_intensity,
    search_box_for_clicks,
    segment_everything,
)
from medseg.transforms import to_display_slice

ROOT = Path(__file__).resolve().parent.parent
PERTURBATION = 0.05
NSD_TOLERANCE_MM = 2.0


def _nsd(prediction: np.ndarray, reference: np.ndarray, spacing_mm: tuple, tolerance: float):
    try:
        import surface_distance
    except ImportError:
        return None
    if not hasattr(np, "Inf"):
        setattr(np, "Inf", np.inf)  # noqa: B010 (surface-distance 0.1 uses the NumPy 1 alias)
    if not prediction.any() or not reference.any():
        return 0.0
    distances = surface_distance.compute_surface_distances(
        reference.astype(bool), prediction.astype(bool), spacing_mm
    )
    return float(surface_distance.compute_surface_dice_at_tolerance(distances, tolerance))


def _perturb(box: tuple[float, ...], rng: np.random.Generator, shape: tuple[int, int]) -> tuple:
    x0, y0, x1, y1 = box
    width, height = x1 - x0 + 1, y1 - y0 + 1
    dx = rng.uniform(-PERTURBATION, PERTURBATION, 2) * width
    dy = rng.uniform(-PERTURBATION, PERTURBATION, 2) * height
    rows, columns = shape
    nx0, nx1 = np.clip([x0 + dx[0], x1 + dx[1]], 0, columns - 1)
    ny0, ny1 = np.clip([y0 + dy[0], y1 + dy[1]], 0, rows - 1)
    return (float(min(nx0, nx1)), float(min(ny0, ny1)), float(max(nx0, nx1)), float(max(ny0, ny1)))


@dataclass
class Case:
    name: str
    stack: SliceStack
    labels: np.ndarray  # (n_slices, rows, columns) display orientation
    spacing_mm: tuple[float, float, float]  # (slice, row, column) order for NSD
    structures: dict[str, list[int]]


def _load_case(
    model: SamModel,
    name: str,
    image: str,
    label: str,
    structures: dict[str, list[int]],
    intensity: IntensityConfig,
    precision: Precision,
) -> Case:
    volume = read_image(ROOT / image)
    reference = reorient_like(read_image(ROOT / label), volume, what="reference")
    codes = display_axis_codes(volume)
    volume_d = reorient(volume, codes)
    reference_d = reorient(reference, codes)
    scaled = scale_intensity(volume_d.array, intensity, is_rgb=False)
    slices = np.stack([to_display_slice(scaled[:, :, k]) for k in range(scaled.shape[2])])
    labels = np.stack(
        [
            to_display_slice(np.rint(reference_d.array[:, :, k]).astype(np.int32))
            for k in range(scaled.shape[2])
        ]
    )
    sx, sy, sz = volume_d.spacing_mm
    stack = SliceStack(model, slices.astype(np.float32), precision=precision, max_cached=1000)
    return Case(name, stack, labels, (sz, sy, sx), structures)


def _score(prediction: np.ndarray, reference: np.ndarray, spacing: tuple, tolerance: float) -> dict:
    return {
        "dice": compute_dice(prediction, reference),
        "nsd": _nsd(prediction, reference, spacing, tolerance),
    }


def _structure_rng(seed: int, case: str, structure: str, draw: int) -> np.random.Generator:
    """One random stream per (case, structure, draw): ``--skip`` does not change the boxes."""
    return np.random.default_rng([seed, zlib.crc32(f"{case}/{structure}".encode()), draw])


def evaluate_case(case: Case, seed: int, draws: int, propagation: PropagationConfig) -> list[dict]:
    """Score the three protocols for every structure of a case, ``draws`` box draws each."""
    rows = []
    model = case.stack.model
    for structure, ids in case.structures.items():
        reference = np.isin(case.labels, ids)
        slices = [k for k in range(len(reference)) if reference[k].any()]
        if not slices:
            print(f"| {case.name} | {structure} | 0 | absent from this volume | | | |", flush=True)
            continue
        first, last = slices[0], slices[-1]
        key = (first + last) // 2
        if not reference[key].any():
            key = max(slices, key=lambda k: int(reference[k].sum()))
        in_plane = reference.any(axis=0)
        tolerance = NSD_TOLERANCE_MM
        scores: dict[str, list[dict]] = {
            "box_per_slice": [],
            "box_3d": [],
            "key_box": [],
            "click": [],
            "click_key_slice_dice": [],
        }
        key_ranges = []
        click_ranges = []
        seconds_per_slice = []
        for draw in range(draws):
            rng = _structure_rng(seed, case.name, structure, draw)
            started = time.perf_counter()
            per_slice = np.zeros_like(reference)
            for k in slices:
                box = _perturb(box_from_mask(reference[k]), rng, reference.shape[1:])
                (prediction,) = predict_prompts(
                    model, case.stack.embedding(k), [SamPrompt(box_xyxy=box)]
                )
                per_slice[k] = prediction.logits[0] > 0
            seconds_per_slice.append((time.perf_counter() - started) / len(slices))
            box_3d = _perturb(box_from_mask(in_plane), rng, reference.shape[1:])
            result_3d = propagate_prompt(
                case.stack,
                key_slice=key,
                prompt=SamPrompt(box_xyxy=box_3d),
                first_slice=first,
                last_slice=last,
                bounding_box_xyxy=box_3d,
                config=propagation,
            )
            key_box = _perturb(box_from_mask(reference[key]), rng, reference.shape[1:])
            result_key = propagate_prompt(
                case.stack, key_slice=key, prompt=SamPrompt(box_xyxy=key_box), config=propagation
            )
            click = _central_click(reference[key], rng)
            result_click = propagate_prompt(
                case.stack,
                key_slice=key,
                prompt=SamPrompt(points_xy=(click,), point_labels=(1,)),
                config=propagation,
            )
            scores["box_per_slice"].append(_score(per_slice, reference, case.spacing_mm, tolerance))
            scores["box_3d"].append(_score(result_3d.masks, reference, case.spacing_mm, tolerance))
            scores["key_box"].append(
                _score(result_key.masks, reference, case.spacing_mm, tolerance)
            )
            scores["click"].append(
                _score(result_click.masks, reference, case.spacing_mm, tolerance)
            )
            scores["click_key_slice_dice"].append(
                {"dice": compute_dice(result_click.masks[key], reference[key])}
            )
            key_ranges.append([result_key.first_slice, result_key.last_slice])
            click_ranges.append([result_click.first_slice, result_click.last_slice])
        rows.append(
            {
                "case": case.name,
                "structure": structure,
                "slices": len(slices),
                "draws": draws,
                **scores,
                "key_box_ranges": key_ranges,
                "click_ranges": click_ranges,
                "reference_range": [first, last],
                # the first draw encodes the slices; later draws reuse the cached embeddings
                "seconds_per_slice_first_draw": seconds_per_slice[0],
            }
        )
        print(_row_text(rows[-1]), flush=True)
    return rows


def _central_click(mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """A click as a reader would place it: a random pixel of the object's central part
    (distance to its border at least half the largest), as ``(x, y)``."""
    distance = ndimage.distance_transform_edt(mask)
    central = np.argwhere(distance >= 0.5 * distance.max())
    row, column = central[rng.integers(len(central))]
    return float(column), float(row)


def _fmt_dice(scores: list[dict]) -> str:
    """Mean Dice over the draws, with the lowest when there are several."""
    dice = [s["dice"] for s in scores]
    low = f" (min {min(dice):.3f})" if len(dice) > 1 else ""
    return f"{np.mean(dice):.3f}{low}"


def _fmt(scores: list[dict]) -> str:
    """Mean Dice (lowest) / mean NSD over the draws."""
    nsd = [s["nsd"] for s in scores]
    nsd_text = "n/a" if any(v is None for v in nsd) else f"{np.mean(nsd):.3f}"
    return f"{_fmt_dice(scores)} / {nsd_text}"


def _row_text(row: dict) -> str:
    ranges = ", ".join(f"{a}-{b}" for a, b in row["key_box_ranges"])
    first, last = row["reference_range"]
    click_ranges = ", ".join(f"{a}-{b}" for a, b in row["click_ranges"])
    return (
        f"| {row['case']} | {row['structure']} | {row['slices']} | {_fmt(row['box_per_slice'])} "
        f"| {_fmt(row['box_3d'])} | {_fmt(row['key_box'])} "
        f"(slices {ranges} vs {first}-{last}) | {_fmt(row['click'])} (key slice "
        f"{_fmt_dice(row['click_key_slice_dice'])}; slices {click_ranges}) |"
    )


def evaluate_nuclei(
    model: SamModel, rng: np.random.Generator, precision: Precision, n_images: int
) -> list[dict]:
    auto_config = load_config(ROOT / "configs/sam/auto_cells.yaml", SamSegmentConfig)
    images = sorted((ROOT / "data/cells_dsb2018/test/images").glob("*.png"))
    rows = []
    chosen = [p for p in images if read_image(p).spatial_shape[:2] == (256, 256)][:n_images]
    for path in chosen:
        volume = read_image(path)
        label_volume = read_image(path.parent.parent / "labels" / (path.stem + ".tif"))
        array = volume.array
        is_rgb = array.ndim == 4
        scaled = scale_intensity(array, auto_config.intensity, is_rgb=is_rgb)
        image = to_display_slice(scaled[:, :, 0])
        reference = to_display_slice(label_volume.array[:, :, 0].astype(np.int32))
        embedding = embed_image(model, image, precision=precision)
        ids = [int(v) for v in np.unique(reference) if v > 0]
        boxes = [_perturb(box_from_mask(reference == i), rng, reference.shape) for i in ids]
        predictions = predict_prompts(model, embedding, [SamPrompt(box_xyxy=b) for b in boxes])
        union = np.zeros(reference.shape, dtype=bool)
        per_nucleus = []
        for i, prediction in zip(ids, predictions, strict=True):
            mask = prediction.logits[0] > 0
            union |= mask
            per_nucleus.append(compute_dice(mask, reference == i))
        auto = segment_everything(model, embedding, auto_config.auto)
        rows.append(
            {
                "case": f"dsb_{path.stem}",
                "n_nuclei": len(ids),
                "box_union": _score(union, reference > 0, (1.0, 1.0), 1.0),
                "box_mean_per_nucleus_dice": float(np.mean(per_nucleus)),
                "auto_foreground": _score(auto > 0, reference > 0, (1.0, 1.0), 1.0),
                "auto_instances": int(auto.max()),
            }
        )
        row = rows[-1]
        print(
            f"| {row['case']} | {row['n_nuclei']} | {_fmt([row['box_union']])} | "
            f"{row['box_mean_per_nucleus_dice']:.3f} | {_fmt([row['auto_foreground']])} | "
            f"{row['auto_instances']} |",
            flush=True,
        )
    return rows


def measure_speed(model: SamModel, image: np.ndarray, repeats: int) -> dict:
    out = {}
    for precision in (Precision.FP32, Precision.BF16):
        embed_image(model, image, precision=precision)  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            embedding = embed_image(model, image, precision=precision)
        out[f"encoder_ms_{precision.value}"] = 1000 * (time.perf_counter() - started) / repeats
    box = (100.0, 120.0, 300.0, 330.0)
    predict_prompts(model, embedding, [SamPrompt(box_xyxy=box)])
    started = time.perf_counter()
    for _ in range(repeats * 5):
        predict_prompts(model, embedding, [SamPrompt(box_xyxy=box)])
    out["decoder_ms_per_prompt"] = 1000 * (time.perf_counter() - started) / (repeats * 5)
    started = time.perf_counter()
    predict_prompts(model, embedding, [SamPrompt(box_xyxy=box)] * 16)
    out["decoder_ms_per_prompt_batch16"] = 1000 * (time.perf_counter() - started) / 16
    rows, columns = image.shape[:2]
    click = ((columns / 2.0, rows / 2.0),)
    started = time.perf_counter()
    search_box_for_clicks(model, embedding, click, (1,))
    out["click_search_ms"] = 1000 * (time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument(
        "--encoder-backend",
        default="torch",
        choices=["torch", "openvino"],
        help="what runs the image encoder (compare openvino against torch fp32)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--draws", type=int, default=5, help="seeded box draws per structure (mean and min)"
    )
    parser.add_argument("--nuclei-images", type=int, default=4)
    parser.add_argument("--speed-repeats", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[], help="case names to skip")
    parser.add_argument("--json", type=Path, help="write all figures here")
    args = parser.parse_args()
    torch.manual_seed(0)
    precision = Precision(args.precision)
    model = load_sam_model("litemedsam", device="cpu", encoder_backend=args.encoder_backend)
    propagation = PropagationConfig()
    started = time.perf_counter()
    ct = IntensityConfig(mode="ct", window="abdomen")
    organs = {"liver": [5], "spleen": [1], "kidney_right": [2], "kidney_left": [3]}
    specs = [
        (
            "ct_dicom_01",
            "data/ct_totalsegmentator/example_ct_dicom",
            "data/ct_totalsegmentator/example_seg_dicom.nii.gz",
            organs,
            ct,
        ),
        (
            "ct_small_01",
            "data/ct_totalsegmentator/example_ct_sm.nii.gz",
            "data/ct_totalsegmentator/example_seg.nii.gz",
            organs,
            ct,
        ),
        (
            "msd_spleen_02",
            "data/ct_msd_spleen/sub-spleen2_ct.nii.gz",
            "data/ct_msd_spleen/sub-spleen2_ct_seg-manual.nii.gz",
            {"spleen": [1]},
            ct,
        ),
        (
            "brats2013_pat0001",
            "data/tumor_brats2015/brats2015_brats_2013_pat0001_1/Flair_subtrMeanDivStd.nii.gz",
            "data/tumor_brats2015/brats2015_brats_2013_pat0001_1/OTMultiClass.nii.gz",
            {"whole_tumour": [1, 2, 3, 4]},
            IntensityConfig(mode="percentile", nonzero_only=True),
        ),
    ]
    print(
        f"LiteMedSAM {precision.value} ({model.encoder_backend}), "
        f"boxes perturbed up to {PERTURBATION:.0%}, "
        f"seed {args.seed}, {args.draws} draws per structure: mean Dice (min) / mean NSD"
    )
    print(
        "| case | structure | slices | box/slice Dice / NSD "
        "| 3D box Dice / NSD | key box Dice / NSD | click Dice / NSD |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows: list[dict] = []
    speed: dict = {}
    for name, image, label, structures, intensity in specs:
        if name in args.skip:
            continue
        case = _load_case(model, name, image, label, structures, intensity, precision)
        if not speed:  # the encoder input is always 256x256: any slice times the same
            speed = measure_speed(
                model, case.stack.slices[case.stack.n_slices // 2], args.speed_repeats
            )
        if speed:
            print(f"  speed: {json.dumps({k: round(v, 1) for k, v in speed.items()})}", flush=True)
        rows += evaluate_case(case, args.seed, args.draws, propagation)
        print(f"  ({name}: {case.stack.n_encoded} slices encoded)", flush=True)
    print(
        "\n| DSB image | nuclei | box union Dice / NSD@1px | mean per-nucleus Dice "
        "| auto Dice / NSD | auto instances |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    nuclei = evaluate_nuclei(model, np.random.default_rng(args.seed), precision, args.nuclei_images)
    figures = json.dumps({k: round(v, 1) for k, v in speed.items()})
    print(f"\nspeed on CPU ({torch.get_num_threads()} threads): {figures}", flush=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps({"volumes": rows, "nuclei": nuclei, "speed": speed}, indent=2)
        )


if __name__ == "__main__":
    main()
