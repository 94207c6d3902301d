"""Stage implementations run for one case: ingest, segment, evaluate, export.

They work on a :class:`CaseContext` and write only inside its (temporary) case folder;
the batch runner renames that folder into place when every stage has succeeded.
"""

from __future__ import annotations

import functools
import json
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medseg.core import ConfigError, InputError, atomic_output
from medseg.evaluation import (
    compute_instance_metrics,
    compute_label_metrics,
    compute_region_metrics,
)
from medseg.export import write_contour_overlay
from medseg.inference import (
    InferConfig,
    predict_volume,
    resolve_instance_config,
    split_tumour_subregions,
)
from medseg.io import (
    Case,
    Volume,
    axis_codes,
    collapse_grey_channels,
    read_image,
    reorient,
    reorient_like,
    write_nifti,
)
from medseg.models import Checkpoint, load_checkpoint, resolve_model_path
from medseg.runner._pipeline import (
    EvaluationKind,
    NucleiModelConfig,
    PipelineConfig,
    PromptSource,
    SamBox3DConfig,
    SamBoxConfig,
    SegmentMethod,
    StageName,
    WatershedConfig,
)
from medseg.runner._trained import (
    VESSEL_LOGGED,
    compute_case_vessel_metrics,
    read_field_of_view,
    segment_with_trained_model,
)
from medseg.sam import (
    IntensityMode,
    ObjectPrompt,
    SamModel,
    SamSegmentConfig,
    box_from_mask,
    embed_image,
    load_prompt_file,
    load_sam_model,
    predict_box_logits,
    resolve_object_prompts,
    segment_with_prompts,
)
from medseg.transforms import apply_window, from_display_slice, scale_percentiles, to_display_slice

logger = logging.getLogger(__name__)

#: Working orientation for 2D work: LPS axes, so (i, j) slices transpose to the
#: radiological display (row 0 anterior, column 0 patient right). 2D images already are.
DISPLAY_CODES = "LPS"


@dataclass
class CaseContext:
    """Everything one case accumulates while its stages run."""

    case: Case
    labels: dict[int, str]
    root: Path
    out_dir: Path
    image: Volume | None = None
    reference: Volume | None = None
    prediction: Volume | None = None
    probabilities: Volume | None = None  # (*spatial, C) from trained models, C0 background
    channels: dict[str, Volume] = field(default_factory=dict)
    roi: Volume | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)


def ingest(context: CaseContext) -> None:
    """Read the case's image, its additional images (other MR sequences: ``channels``),
    region mask and reference, each moved onto the image grid by flips only."""
    context.image = read_image(context.root / context.case.image)
    for name, relative in context.case.additional_images.items():
        context.channels[name] = reorient_like(
            read_image(context.root / relative), context.image, what=f"image {name}"
        )
    if context.case.roi is not None:
        context.roi = reorient_like(
            read_image(context.root / context.case.roi), context.image, what="region mask"
        )
    if context.case.label is not None:
        label_path = context.root / context.case.label
        reference = read_image(label_path)
        reference = reference.with_array(
            collapse_grey_channels(reference.array, what="reference label", path=label_path)
        )
        context.reference = reorient_like(reference, context.image, what="reference label")


def display_slices(volume: Volume) -> tuple[Volume, int]:
    """The volume in the working orientation and its number of slices."""
    working = reorient(volume, DISPLAY_CODES)
    return working, working.spatial_shape[2]


def _display_image(volume_lps: Volume, k: int, *, window: tuple[float, float] | None) -> np.ndarray:
    """Slice ``k`` as a (row, column[, 3]) float image in [0, 1] for SAM and overlays."""
    plane = to_display_slice(volume_lps.array[:, :, k])
    if plane.ndim == 3:  # RGB: passthrough, scaled from the dtype's range
        scale = 255.0 if plane.dtype == np.uint8 else float(max(plane.max(), 1))
        return np.clip(plane[..., :3].astype(np.float32) / scale, 0.0, 1.0)
    if window is not None:
        return apply_window(plane, level_hu=window[0], width_hu=window[1])
    return scale_percentiles(plane)


@functools.lru_cache(maxsize=2)
def cached_sam_model(name: str, checkpoint: str | None, device: str) -> SamModel:
    """One model load per worker process, not per case."""
    return load_sam_model(name, checkpoint=checkpoint, device=device)


def label_ids_for(structures: list[str], labels: dict[int, str]) -> dict[str, int]:
    """Map structure names to the dataset's label ids; ConfigError naming unknown ones."""
    by_name = {name: label_id for label_id, name in labels.items()}
    unknown = [name for name in structures if name not in by_name]
    if unknown:
        raise ConfigError(f"structures not in the dataset's labels: {', '.join(unknown)}")
    return {name: by_name[name] for name in structures}


def segment_with_reference_boxes(
    image: Volume, reference: Volume, *, structure_ids: dict[str, int], config: SamBoxConfig
) -> Volume:
    """LiteMedSAM with one reference-derived box per structure and slice (MedSAM protocol).

    Each slice is encoded once and prompted once per structure present on it. Returns a
    label map (uint8/uint16 ids of ``structure_ids``) on ``image``'s grid; where prompted
    structures overlap, the later one wins.
    """
    model = cached_sam_model(config.model, config.checkpoint, config.device)
    image_lps, n_slices = display_slices(image)
    reference_lps = reorient(reference, DISPLAY_CODES).array
    window = config.window.level_width_hu if config.window is not None else None
    dtype = np.uint8 if max(structure_ids.values(), default=0) < 256 else np.uint16
    prediction_lps = np.zeros(image_lps.spatial_shape, dtype=dtype)
    for k in range(n_slices):
        plane = reference_lps[:, :, k]
        present = [label_id for label_id in structure_ids.values() if (plane == label_id).any()]
        if not present:
            continue
        embedding = embed_image(
            model, _display_image(image_lps, k, window=window), precision=config.precision
        )
        for label_id in present:
            box = box_from_mask(to_display_slice(plane == label_id), margin_px=config.box_margin_px)
            mask = from_display_slice(predict_box_logits(model, embedding, box) > 0.0)
            prediction_lps[:, :, k][mask] = label_id
    prediction = image_lps.with_array(prediction_lps)
    return reorient(prediction, axis_codes(image))


def _structure_label_ids(
    config: SamBox3DConfig, labels: dict[int, str]
) -> dict[str, tuple[list[int], int]]:
    """Structure name → (reference label ids, output label)."""
    known = {name: label_id for label_id, name in labels.items()}
    resolved = {}
    for structure in config.structures:
        ids = structure.reference_labels
        if ids is None:
            if structure.name not in known:
                raise ConfigError(
                    f"structure {structure.name!r} is not a dataset label; give its "
                    "reference_labels"
                )
            ids = [known[structure.name]]
        resolved[structure.name] = (ids, structure.output_label or ids[0])
    return resolved


def simulate_box_prompts(
    reference: Volume,
    structures: dict[str, tuple[list[int], int]],
    *,
    jitter_fraction: float,
    rng: np.random.Generator,
) -> list[ObjectPrompt]:
    """A simulated radiologist's 3D box per structure present in ``reference``.

    The box is the reference's bounding box in file voxel indices; each in-plane side (i, j)
    moves by a uniform random amount up to ``jitter_fraction`` of the box size along that
    axis, clipped to the image; the slice range (k) is kept exact.
    """
    array = np.asarray(reference.array)
    shape = array.shape[:3]
    prompts = []
    for name, (ids, output_label) in structures.items():
        where = np.argwhere(np.isin(array, ids))
        if where.size == 0:
            logger.warning("structure %s is absent from the reference; not prompted", name)
            continue
        low, high = where.min(axis=0)[:3].astype(float), where.max(axis=0)[:3].astype(float)
        for axis in (0, 1):
            size = high[axis] - low[axis] + 1
            moved = np.clip(
                [low[axis], high[axis]] + rng.uniform(-1, 1, 2) * jitter_fraction * size,
                0,
                shape[axis] - 1,
            )
            low[axis], high[axis] = float(moved.min()), float(moved.max())
        prompts.append(
            ObjectPrompt(label=output_label, box_ijk=(*low.tolist(), *high.tolist()))  # type: ignore[arg-type]
        )
    return prompts


def segment_with_3d_boxes(context: CaseContext, config: SamBox3DConfig) -> Volume:
    """SAM propagated from one 3D box per structure, then optional tumour sub-regions.

    Boxes are simulated from the reference (:func:`simulate_box_prompts`, seeded by the
    pipeline seed and the case id) or read from the prompt file. Returns a label map on the
    image grid: each structure's output label, or with ``subregions`` the BraTS labels
    1 (core), 2 (oedema), 4 (enhancing) inside the union of the structures.
    """
    case_id = context.case.id
    if context.image is None:
        raise InputError("segment needs the ingest stage first", case_id=case_id)
    volume = context.image
    if config.image_channel is not None:
        if config.image_channel not in context.channels:
            raise ConfigError(
                f"image_channel {config.image_channel!r} is not among the case's images "
                f"({', '.join(sorted(context.channels)) or 'none'})"
            )
        volume = context.channels[config.image_channel]
    if config.prompts is PromptSource.FILE:
        prompt_file = load_prompt_file(context.root / str(config.prompt_file))
        objects = resolve_object_prompts(prompt_file, volume, case_id=case_id)
    else:
        if context.reference is None:
            raise InputError(
                "prompts 'reference' needs a reference label to simulate the boxes",
                case_id=case_id,
            )
        seed = [config.seed, zlib.crc32(case_id.encode("utf-8"))]
        objects = simulate_box_prompts(
            context.reference,
            _structure_label_ids(config, context.labels),
            jitter_fraction=config.box_jitter_fraction,
            rng=np.random.default_rng(seed),
        )
    if not objects:
        raise InputError("no structure to prompt in this case", case_id=case_id)
    model = cached_sam_model(config.model, config.checkpoint, config.device)
    sam_config = SamSegmentConfig(
        model=config.model,
        checkpoint=config.checkpoint,
        device=config.device,
        precision=config.precision,
        intensity=config.intensity,
        propagation=config.propagation,
        max_cached_slices=config.max_cached_slices,
    )
    labels = segment_with_prompts(model, volume, objects, sam_config)
    if config.subregions is None:
        return labels
    channel = config.subregions.enhancing_channel
    if channel not in context.channels:
        raise ConfigError(
            f"subregions.enhancing_channel {channel!r} is not among the case's images "
            f"({', '.join(sorted(context.channels)) or 'none'})"
        )
    result = split_tumour_subregions(
        labels.array > 0,
        context.channels[channel].array,
        spacing_mm=volume.spacing_mm[:3],
        config=config.subregions,
        brain_mask=context.roi.array > 0 if context.roi is not None else None,
        search_mask=_box_mask(objects, labels.spatial_shape),
    )
    return labels.with_array(result.labels)


def _box_mask(objects: list[ObjectPrompt], shape: tuple[int, ...]) -> np.ndarray | None:
    """Union of the prompts' voxel boxes (inclusive, rounded outwards); None without boxes."""
    boxes = [obj.box_ijk for obj in objects if obj.box_ijk is not None]
    if not boxes:
        return None
    mask = np.zeros(shape[:3], dtype=bool)
    for box in boxes:
        low = [max(int(np.floor(v)), 0) for v in box[:3]]
        high = [min(int(np.ceil(v)), n - 1) for v, n in zip(box[3:], shape[:3], strict=True)]
        mask[low[0] : high[0] + 1, low[1] : high[1] + 1, low[2] : high[2] + 1] = True
    return mask


def segment_nuclei_watershed(image: Volume, *, config: WatershedConfig) -> Volume:
    """Classical nuclei instances: Otsu foreground, distance-transform peaks, watershed.

    The minority side of the Otsu threshold is taken as foreground, so both fluorescence
    (bright nuclei) and brightfield/H&E (dark nuclei) work. Returns a uint16 instance map.
    """
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_otsu
    from skimage.morphology import remove_small_objects
    from skimage.segmentation import watershed

    if image.spatial_shape[2] != 1:
        raise InputError("the watershed nuclei baseline works on 2D images (one slice)")
    plane = image.array[:, :, 0].astype(np.float32)
    grey = plane[..., :3].mean(axis=-1) if plane.ndim == 3 else plane
    if config.smoothing_sigma_px > 0:
        grey = gaussian(grey, sigma=config.smoothing_sigma_px, preserve_range=True)
    if float(grey.max()) == float(grey.min()):
        return image.with_array(np.zeros(image.spatial_shape, dtype=np.uint16))
    foreground = grey > threshold_otsu(grey)
    if foreground.mean() > 0.5:
        foreground = ~foreground
    foreground = remove_small_objects(foreground, max_size=config.min_size_px)
    distance = ndimage.distance_transform_edt(foreground)
    components, _ = ndimage.label(foreground)
    peaks = peak_local_max(
        distance, min_distance=config.min_distance_px, labels=components, exclude_border=False
    )
    markers = np.zeros(foreground.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    instances = watershed(-distance, markers, mask=foreground).astype(np.uint16)
    return image.with_array(instances[:, :, None])


@functools.lru_cache(maxsize=2)
def cached_instance_model(path: str) -> tuple[Checkpoint, torch.nn.Module]:
    """One checkpoint load per worker process, not per case."""
    checkpoint = load_checkpoint(path)
    if not checkpoint.is_instance_model:
        raise ConfigError(
            f"method nuclei_model needs an instance model (target instance_boundary); this "
            f"checkpoint's target is {checkpoint.target.value}",
            path=path,
        )
    return checkpoint, checkpoint.build(device="cpu")


def segment_nuclei_with_model(image: Volume, *, config: NucleiModelConfig, root: Path) -> Volume:
    """Nuclei instances from a trained 3-class U-Net and its marker watershed.

    Returns a uint16 instance map (0 background, 1..N) on ``image``'s grid.
    """
    candidate = root / config.model
    path = resolve_model_path(candidate if candidate.exists() else config.model)
    checkpoint, network = cached_instance_model(str(path))
    infer = InferConfig(
        overlap=config.overlap,
        precision=config.precision,
        mirror=config.mirror,
        device=config.device,
    )
    prediction = predict_volume(
        network,
        image,
        plans=checkpoint.plans,
        config=infer,
        instances=resolve_instance_config(checkpoint, config.instances),
    )
    return prediction.labels


def segment(context: CaseContext, config: PipelineConfig) -> None:
    """Run the configured segmenter and store its label map on the image grid."""
    image = context.image
    if image is None:
        raise InputError("segment needs the ingest stage first", case_id=context.case.id)
    method = config.segment.method
    if method is SegmentMethod.SAM_REFERENCE_BOX:
        if context.reference is None:
            raise InputError(
                "sam_reference_box needs a reference label for its prompts", case_id=context.case.id
            )
        sam = config.segment.sam
        if sam is None:
            raise ConfigError("segment.sam is required for method sam_reference_box")
        context.prediction = segment_with_reference_boxes(
            image,
            context.reference,
            structure_ids=label_ids_for(sam.structures, context.labels),
            config=sam,
        )
    elif method is SegmentMethod.OTSU_WATERSHED:
        context.prediction = segment_nuclei_watershed(image, config=config.segment.watershed)
    elif method is SegmentMethod.TRAINED_MODEL:
        trained = config.segment.trained_model
        if trained is None:
            raise ConfigError("segment.trained_model is required for method trained_model")
        context.prediction, context.probabilities = segment_with_trained_model(
            image, config=trained, labels=context.labels, root=context.root
        )
    elif method is SegmentMethod.NUCLEI_MODEL:
        context.prediction = segment_nuclei_with_model(
            image, config=config.segment.nuclei_model, root=context.root
        )
    elif method is SegmentMethod.SAM_BOX_3D:
        if config.segment.sam_3d is None:
            raise ConfigError("segment.sam_3d is required for method sam_box_3d")
        context.prediction = segment_with_3d_boxes(context, config.segment.sam_3d)


_SEMANTIC_LOGGED = ("dice", "hd95_mm", "assd_mm", "nsd")


def _evaluated_structures(config: PipelineConfig, labels: dict[int, str]) -> list[str]:
    """The label names a semantic evaluation scores: the segmented ones, else all."""
    if config.segment.sam is not None:
        return config.segment.sam.structures
    if config.segment.sam_3d is not None:
        return [s.name for s in config.segment.sam_3d.structures]
    return [labels[i] for i in sorted(labels)]


_INSTANCE_LOGGED = ("f1_50", "mean_accuracy_50_95", "pq_50", "n_pred", "n_ref")


def evaluate(context: CaseContext, config: PipelineConfig) -> None:
    """Score the prediction against the reference with :mod:`medseg.evaluation`.

    Semantic: Dice, HD95, ASSD and NSD (2 mm) per structure, surface metrics in mm from the
    image spacing (DeepMind definitions). Instance: F1 at IoU 0.5, mean accuracy over IoU
    0.50:0.95 (the DSB2018 score) and panoptic quality. Vessel: F1, AUC-ROC (from the
    trained model's probabilities), sensitivity, specificity, accuracy and clDice inside
    the case's ``roi`` mask (field of view). All go to ``metrics.json``; the
    headline ones are returned for tracking. Infinite distances (one mask empty) are kept
    in the JSON and left out of the tracked numbers.
    """
    if context.prediction is None or context.reference is None:
        raise InputError(
            "evaluate needs a prediction and a reference label", case_id=context.case.id
        )
    predicted = context.prediction.array
    reference = context.reference.array
    details: dict[str, object] = {}
    metrics: dict[str, float] = {}
    if config.evaluate.kind is EvaluationKind.VESSEL:
        image = context.image if context.image is not None else context.prediction
        fov = read_field_of_view(context.case, root=context.root, image=image)
        vessel = compute_case_vessel_metrics(
            context.prediction,
            context.reference,
            image=image,
            fov=fov,
            probabilities=context.probabilities,
        )
        details = {"vessel": vessel, "fov": context.case.roi is not None}
        metrics = {name: vessel[name] for name in VESSEL_LOGGED if np.isfinite(vessel[name])}
    elif config.evaluate.kind is EvaluationKind.INSTANCE:
        result = compute_instance_metrics(predicted, reference).to_dict()
        details = {"instances": result, "empty": None}
        metrics = {name: result[name] for name in _INSTANCE_LOGGED}
        metrics["count_error"] = result["n_pred"] - result["n_ref"]
    else:
        spatial = context.image.spatial_shape if context.image is not None else predicted.shape
        spacing = context.reference.spacing_mm[: len(spatial)]
        if config.evaluate.regions is not None:
            by_name = compute_region_metrics(
                predicted, reference, regions=config.evaluate.regions, spacing_mm=spacing
            )
        else:
            ids = label_ids_for(_evaluated_structures(config, context.labels), context.labels)
            per_label = compute_label_metrics(
                predicted, reference, labels=ids.values(), spacing_mm=spacing
            )
            by_name = {name: per_label[label_id] for name, label_id in ids.items()}
        for name, result in by_name.items():
            details[name] = {**result.to_dict(), "empty": result.empty.value}
            for metric in _SEMANTIC_LOGGED:
                value = result.to_dict()[metric]
                if np.isfinite(value):
                    metrics[f"{metric}_{name}"] = value
    context.metrics = metrics
    path = context.out_dir / "metrics.json"
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(
            json.dumps({"case": context.case.id, "metrics": details}, indent=2, default=str) + "\n"
        )
    context.outputs.append(path.name)


def export(context: CaseContext, config: PipelineConfig) -> None:
    """Write the label map (NIfTI, the image's geometry) and a PNG overlay of a key slice."""
    if context.prediction is None or context.image is None:
        raise InputError("export needs a prediction", case_id=context.case.id)
    if config.export.image_nifti:
        path = context.out_dir / "image.nii.gz"
        write_nifti(context.image, path, overwrite=True)
        context.outputs.append(path.name)
    if config.export.mask_nifti:
        path = context.out_dir / "mask.nii.gz"
        write_nifti(context.prediction, path, overwrite=True)
        context.outputs.append(path.name)
    if config.export.overlay_png:
        image_lps, _ = display_slices(context.image)
        prediction_lps = reorient(context.prediction, DISPLAY_CODES).array > 0
        reference_lps = (
            reorient(context.reference, DISPLAY_CODES).array > 0
            if context.reference is not None
            else None
        )
        weights = (reference_lps if reference_lps is not None else prediction_lps).sum(axis=(0, 1))
        k = int(np.argmax(weights))
        window = None
        sam = config.segment.sam
        if sam is not None and sam.window is not None:
            window = sam.window.level_width_hu
        sam_3d = config.segment.sam_3d
        if sam_3d is not None and sam_3d.intensity.mode is IntensityMode.CT:
            window = sam_3d.intensity.level_width_hu
        display = _display_image(image_lps, k, window=window)
        if display.ndim == 3:
            display = display @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        masks = [("prediction", to_display_slice(prediction_lps[:, :, k]), "tab:red")]
        if reference_lps is not None:
            masks.append(("reference", to_display_slice(reference_lps[:, :, k]), "tab:green"))
        path = context.out_dir / "overlay.png"
        write_contour_overlay(
            display, masks, path, title=f"{context.case.id} slice {k}", overwrite=True
        )
        context.outputs.append(path.name)


def run_stages(context: CaseContext, config: PipelineConfig) -> None:
    """Run the pipeline's stages, in order, on one case."""
    for stage in config.stages:
        if stage is StageName.INGEST:
            ingest(context)
        elif stage is StageName.SEGMENT:
            segment(context, config)
        elif stage is StageName.EVALUATE:
            evaluate(context, config)
        elif stage is StageName.EXPORT:
            export(context, config)
