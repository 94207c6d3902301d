"""``medseg sam``: segment an image with a SAM-family model."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from medseg.cli._inputs import (
    OutputFormat,
    check_2d_output,
    expand_inputs,
    plan_outputs,
)
from medseg.cli._options import (
    CLI_STARTED,
    add_device,
    add_mask_format,
    add_out,
    add_overwrite,
    add_path_alias,
    add_precision,
    default_root,
    parse_numbers,
)
from medseg.core import (
    ExitCode,
    check_distinct_outputs,
    check_output_path,
    load_config,
    parse_config,
    progress,
)

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from medseg.sam import SamSegmentConfig

_SAM_EPILOG = """\
coordinates are voxel indices along the image file's array axes (i, j, k): for DICOM
(column, row, slice); for 2D images x = column, y = row. The mask has the input's geometry;
from a DICOM series it is written in dcm2niix's array order (same world positions), with
its label names and SNOMED CT codes in OUT.labels.json.

examples:
  medseg sam data/ct_msd_spleen/sub-spleen2_ct.nii.gz --out spleen.nii.gz \\
      --intensity ct --box 40,60,5,95,120,20          # one 3D box: propagated through z
  medseg sam ct_dicom_dir --out liver.nii.gz --box 60,150,10,300,400,10
  medseg sam -i image.png -o mask.png --point 120,80,1 --point 140,60,0
  medseg sam -i 'slides/*.png' -o masks/ --auto         # one masks/<name>_labels.png each
  medseg sam data/ct_msd_spleen/sub-spleen2_ct.nii.gz --out spleen.nii.gz \
      --intensity ct --point 70,95,12,1 --propagate  # one click, propagated both ways
  medseg sam volume.nii.gz --out masks.nii.gz --prompts prompts.json --case case_01
  medseg sam cells.png --out cells.nii.gz --auto --config configs/sam/auto_cells.yaml
  medseg sam ct.nii.gz --out organs.nii.gz --intensity ct \\
      --text "liver, spleen" --text "left kidney" --text lungs  # located, no reference
"""


#: What ``medseg sam --out FILE`` may end in (PNG/TIFF for 2D inputs only).
_SAM_OUT_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".png", ".tif", ".tiff")


def _plan_sam_outputs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """(image, output) per input, checked before any heavy import.

    One file, DICOM folder or zip writes ``--out`` (a file); a folder of images or a
    pattern writes one ``<stem>_labels.<ext>`` per image into the ``--out`` folder.
    """
    reads = [p for p in (args.prompts, args.config) if p is not None]
    inputs = expand_inputs([args.image])
    if inputs == [args.image]:
        out = check_output_path(
            args.out,
            overwrite=args.overwrite,
            inputs=[args.image, *reads],
            suffixes=_SAM_OUT_SUFFIXES,
            what="--out",
        )
        check_2d_output(args.image, out)
        return [(args.image, out)]
    outputs = plan_outputs(
        inputs,
        args.out,
        tag="_labels",
        fmt=OutputFormat(args.format),
        overwrite=args.overwrite,
        reads=reads,
    )
    return list(zip(inputs, outputs, strict=True))


def _cmd_sam(args: argparse.Namespace) -> int:
    from medseg.core import ConfigError

    given = [bool(args.box or args.point), args.prompts is not None, args.auto, bool(args.text)]
    if sum(given) != 1:
        raise ConfigError("give exactly one of: --box/--point, --prompts FILE, --auto, --text")
    # inputs and outputs are checked before torch is imported (seconds)
    jobs = _plan_sam_outputs(args)
    if args.text:
        for _, out in jobs:
            _check_sidecar(out, overwrite=args.overwrite)

    from medseg.io import read_image, write_label_map
    from medseg.sam import (
        Precision,
        PromptFile,
        SamSegmentConfig,
        load_prompt_file,
        load_sam_model,
        resolve_object_prompts,
        segment_automatically,
        segment_prompts_with_confidence,
        segment_with_prompts,
    )

    config = (
        load_config(args.config, SamSegmentConfig)
        if args.config
        else parse_config(SamSegmentConfig, {})
    )
    precision_given = args.precision is not None or "precision" in config.model_fields_set
    data = config.model_dump(mode="json")
    for key in ("model", "checkpoint", "device", "precision", "encoder_backend"):
        if getattr(args, key) is not None:
            data[key] = str(getattr(args, key))
    for flag, key in (
        ("intensity", "mode"),
        ("window", "window"),
        ("level", "level_hu"),
        ("width", "width_hu"),
    ):
        if getattr(args, flag) is not None:
            data["intensity"][key] = getattr(args, flag)
    config = parse_config(SamSegmentConfig, data, source="command line")

    if args.confidence and (args.auto or args.text):
        raise ConfigError("--confidence works with --box/--point or --prompts")
    for _, out in jobs if args.confidence else ():
        check_distinct_outputs(list(_confidence_paths(out).values()), overwrite=args.overwrite)
    if args.text:
        return _sam_text(args, config, jobs)
    prompt_file = None
    if args.prompts is not None:
        prompt_file = load_prompt_file(args.prompts)
    elif not args.auto:
        spec: dict[str, object] = {"label": 1, "propagate": args.propagate}
        if args.box:
            spec["box"] = parse_numbers(args.box, what="--box", counts=(4, 6))
        if args.point:
            spec["points"] = [parse_numbers(p, what="--point", counts=(3, 4)) for p in args.point]
        for key in ("slice", "first_slice", "last_slice"):
            if getattr(args, key) is not None:
                spec[key] = getattr(args, key)
        prompt_file = parse_config(
            PromptFile,
            {"cases": [{"case_id": "cli", "objects": [spec]}]},
            source="command line",
        )

    clock = [time.perf_counter()]

    def lap() -> float:
        clock.append(time.perf_counter())
        return clock[-1] - clock[-2]

    model = None
    for image, out in progress(jobs, description="sam", unit="image") if len(jobs) > 1 else jobs:
        volume = read_image(image)
        objects = (
            resolve_object_prompts(prompt_file, volume, case_id=args.case) if prompt_file else None
        )
        read_s = lap()
        if model is None:
            if not precision_given and any(o.points_ijk for o in objects or ()):
                # clicks rank near-tied candidate boxes by predicted IoU, and bf16 embeddings
                # flip such ties (MSD spleen click: Dice 0.811 fp32, 0.716 bf16); boxes lose
                # <= 0.002
                config = config.model_copy(update={"precision": Precision.FP32})
                logger.info("precision fp32 for click prompts (pass --precision bf16 to override)")
            model = load_sam_model(
                config.model,
                checkpoint=config.checkpoint,
                device=config.device,
                encoder_backend=config.encoder_backend.value,
            )
        load_s = lap()
        prompted = None
        if objects is None:
            labels = segment_automatically(model, volume, config)
        elif args.confidence:
            prompted = segment_prompts_with_confidence(model, volume, objects, config)
            labels = prompted.labels
        else:
            labels = segment_with_prompts(model, volume, objects, config)
        segment_s = lap()
        entries = None
        if objects is not None:  # --auto writes instances: object ids, no structures
            names = _prompt_names(prompt_file, args.case)
            entries = _label_entries(
                {o.label: names.get(o.label, f"label_{o.label}") for o in objects}
            )
        write_label_map(labels, out, entries=entries, source=volume, overwrite=args.overwrite)
        if prompted is not None:
            _write_sam_confidence(
                prompted, objects or [], _confidence_paths(out), overwrite=args.overwrite
            )
        logger.info(
            "time: imports and setup %.1f s, read %.1f s, model load %.1f s, segment %.1f s "
            "(encoder %.1f s for %d slices, %s %s), write %.1f s",
            clock[0] - CLI_STARTED,
            read_s,
            load_s,
            segment_s,
            model.encoder_seconds,
            model.encoder_calls,
            model.encoder_backend,
            config.precision.value,
            lap(),
        )
        n_labels = len({int(v) for v in labels.array[labels.array > 0].ravel()[:1_000_000]})
        print(
            f"{config.model}: {int((labels.array > 0).sum())} voxels in {n_labels} labels -> {out}"
        )
    return ExitCode.OK


def _confidence_paths(out: Path) -> dict[str, Path]:
    """``x.nii.gz`` → ``x_confidence.nii.gz``, ``x_probability.nii.gz``, ``x_qc.json``."""
    name = out.name
    stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else out.stem
    return {
        "confidence": out.with_name(f"{stem}_confidence.nii.gz"),
        "probability": out.with_name(f"{stem}_probability.nii.gz"),
        "qc": out.with_name(f"{stem}_qc.json"),
    }


def _write_sam_confidence(prompted, objects, paths: dict[str, Path], *, overwrite: bool) -> None:  # type: ignore[no-untyped-def]
    """The confidence files of ``medseg sam --confidence`` (see ``--confidence``'s help)."""
    import json

    import numpy as np

    from medseg.core import atomic_output
    from medseg.evaluation import compute_segmentation_qc
    from medseg.io import write_nifti
    from medseg.segment import Confidence

    confidence = Confidence(
        probability=prompted.probability,
        structure_ids=prompted.label_ids,
        source="sam_sigmoid",
        slice_iou=prompted.slice_iou,
        stopped_early=prompted.stopped_early,
        boxes_ijk={o.label: tuple(o.box_ijk) for o in objects if o.box_ijk is not None},
    )
    voxel = confidence.voxel_confidence(prompted.labels.array)
    write_nifti(prompted.labels.with_array(voxel), paths["confidence"], overwrite=overwrite)
    probability = prompted.probability
    write_nifti(
        probability.with_array(np.asarray(probability.array, dtype=np.float32)),
        paths["probability"],
        overwrite=overwrite,
    )
    names = {label: f"label_{label}" for label in prompted.label_ids}
    qc = compute_segmentation_qc(
        prompted.labels.array,
        names,
        spacing_mm=prompted.labels.spacing_mm,
        confidence=confidence,
    )
    document = {
        "confidence": "sam_sigmoid",
        "probability_channels": {str(i): n for i, n in enumerate(names.values())},
        "slice_iou": {names[k]: v for k, v in prompted.slice_iou.items()},
        "structures": {name: entry.to_dict() for name, entry in qc.items()},
    }
    with atomic_output(paths["qc"], overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    for path in paths.values():
        print(path)


def _check_sidecar(out: Path, *, overwrite: bool) -> None:
    from medseg.io import label_sidecar_path

    sidecar = label_sidecar_path(out)
    if sidecar.exists() and not overwrite:
        from medseg.core import OutputExistsError

        raise OutputExistsError(
            "output already exists; pass --overwrite to replace it", path=sidecar
        )


def _sam_text(
    args: argparse.Namespace, config: SamSegmentConfig, jobs: list[tuple[Path, Path]]
) -> int:
    """``medseg sam --text``: the registered ``sam_text`` segmenter on each image; labels +
    sidecar."""
    from medseg.anatomy import Vocabulary, split_names
    from medseg.core import parse_config
    from medseg.io import label_sidecar_path, read_image, write_image, write_label_map
    from medseg.segment import CaseImages, SamTextConfig, SamTextSegmenter

    root = default_root()
    names = split_names(args.text)
    Vocabulary().match_all(names)  # unknown or ambiguous names: refused before reading
    text_config = parse_config(
        SamTextConfig,
        {
            "structures": names,
            "modality": args.modality,
            "atlas": str((args.atlas or root / "data" / "ct_totalsegmentator").resolve()),
            "model": config.model,
            "checkpoint": config.checkpoint,
            "device": config.device,
            "precision": config.precision,
            # auto: the CT window once the image is known to be a CT; ct: the image is a CT
            "intensity": config.intensity.model_dump(mode="json"),
            "propagation": config.propagation.model_dump(mode="json"),
        },
        source="command line",
    )
    segmenter = SamTextSegmenter(text_config)
    for image, out in jobs:
        sidecar = label_sidecar_path(out)
        clock = [time.perf_counter()]
        volume = read_image(image)
        channels = {}
        for spec in args.channel or ():
            name, _, path = spec.partition("=")
            if not name or not path:
                from medseg.core import ConfigError

                raise ConfigError(f"--channel must be NAME=PATH, not {spec!r}")
            channels[name] = read_image(Path(path))
        read_s = time.perf_counter() - clock[0]
        case = CaseImages(case_id="cli", image=volume, root=root, channels=channels)
        result = segmenter.segment_with_details(case)
        labels = result.segmentation.labels
        if result.entries and all(isinstance(e.get("label"), int) for e in result.entries):
            # names, SNOMED CT codes and located boxes travel with the mask (medseg.io sidecar)
            entries = [{**entry, "segmenter": result.segmenter} for entry in result.entries]
            write_label_map(labels, out, entries=entries, source=volume, overwrite=args.overwrite)
        else:  # a routed concept (tumour, nuclei, vessels): its segmenter's own label values
            write_image(labels, out, overwrite=args.overwrite)
        logger.info(
            "time: imports and setup %.1f s, read %.1f s, locate+segment+write %.1f s",
            clock[0] - CLI_STARTED,
            read_s,
            time.perf_counter() - clock[0] - read_s,
        )
        for entry in result.entries:
            if entry["label"] is None:
                what = (
                    f"{entry['instances']} instances"
                    if "instances" in entry
                    else f"labels {entry['labels']}, {entry['voxels']} voxels"
                )
                print(f"{entry['name']}: by {entry['segmenter']} ({entry['model']}): {what}")
                continue
            state = "" if entry["found"] else "  (not found in the field of view)"
            print(f"label {entry['label']}: {entry['name']}: {entry['voxels']} voxels{state}")
        print(f"-> {out} and {sidecar}")
    return ExitCode.OK


def _prompt_names(prompt_file: object, case_id: str | None) -> dict[int, str]:
    """Label value → name of the prompt file's objects that have a name."""
    names: dict[int, str] = {}
    for case in getattr(prompt_file, "cases", ()):
        if case_id is None or case.case_id == case_id:
            for obj in case.objects:
                if obj.name:
                    names.setdefault(obj.label, obj.name)
    return names


def _label_entries(names: dict[int, str]) -> list[dict[str, object]]:
    """Label sidecar entries, coded from the export code map of the checkout."""
    from medseg.export import describe_labels, load_structure_codes

    codes_path = default_root() / "configs" / "export" / "structure_codes.yaml"
    code_map = load_structure_codes(codes_path) if codes_path.is_file() else None
    return describe_labels(names, code_map=code_map)


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this group's subcommands to ``commands``."""
    sam = commands.add_parser(
        "sam",
        help="segment an image with LiteMedSAM/SAM from boxes, clicks, a prompt file or --auto",
        description="Segment a DICOM series, NIfTI volume or 2D image with a SAM-family model "
        "(LiteMedSAM by default; official SAM ViT-B/L/H with --checkpoint). A box spanning "
        "several slices is propagated through them from its middle slice; --propagate "
        "carries a one-slice prompt to its neighbours until the object vanishes.",
        epilog=_SAM_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_path_alias(
        sam,
        dest="image",
        flags=("-i", "--input"),
        metavar="IMAGE",
        help="DICOM folder/zip, NIfTI/NRRD/MHA or 2D image; or a folder of images or a quoted "
        "glob pattern (one output each)",
    )
    add_out(
        sam,
        help="output label map: .nii.gz/.nii/.nrrd/.mha, or .png/.tif for a 2D image (the "
        "image's own H x W); a folder for a folder of images or a pattern",
    )
    add_mask_format(
        sam,
        help="mask file type for a folder of images (auto: PNG for 2D images, TIFF for TIFF, "
        "NIfTI for volumes)",
    )
    sam.add_argument("--box", help="x0,y0,x1,y1 (2D) or x0,y0,z0,x1,y1,z1 (3D), voxel indices")
    sam.add_argument(
        "--point",
        action="append",
        help="x,y,label or x,y,z,label (label 1 foreground, 0 background); repeatable; "
        "LiteMedSAM turns clicks into the best of candidate boxes around them",
    )
    sam.add_argument("--slice", type=int, help="slice k for a 4-value --box or 3-value --point")
    sam.add_argument(
        "--propagate", action="store_true", help="propagate a one-slice prompt through the volume"
    )
    sam.add_argument("--first-slice", type=int, help="first slice k propagation may reach")
    sam.add_argument("--last-slice", type=int, help="last slice k propagation may reach")
    sam.add_argument("--prompts", type=Path, help="JSON prompt file (see medseg.inference)")
    sam.add_argument("--case", help="case_id in the prompt file (needed if it holds several)")
    sam.add_argument("--auto", action="store_true", help="segment everything (instance labels)")
    sam.add_argument(
        "--confidence",
        action="store_true",
        help="also write OUT_confidence.nii.gz (confidence in each voxel's label: the "
        "decoder's sigmoid inside an object, 1 - the largest object probability outside), "
        "OUT_probability.nii.gz (one channel per object) and OUT_qc.json (predicted IoU per "
        "slice, QC flags with thresholds and reasons)",
    )
    sam.add_argument(
        "--text",
        action="append",
        help="CT structure(s) to find and segment, e.g. 'liver, spleen, left kidney' "
        "(repeatable; label k = k-th name; the sidecar OUT.labels.json gives names and "
        "SNOMED CT codes)",
    )
    sam.add_argument(
        "--modality",
        help="the image's modality for --text (CT, MR, microscopy, fundus); default: DICOM "
        "Modality, Hounsfield-like values, any 2D kind for a 2D image",
    )
    sam.add_argument(
        "--channel",
        action="append",
        metavar="NAME=PATH",
        help="a further image of the case for a --text concept routed to a channel model "
        "(brain tumour on MR: --channel t1c=T1C.nii.gz)",
    )
    sam.add_argument(
        "--atlas",
        type=Path,
        help="labelled atlas folder for --text (default: data/ct_totalsegmentator)",
    )
    sam.add_argument("--config", type=Path, help="SAM config YAML (e.g. configs/sam/*.yaml)")
    sam.add_argument("--model", help="litemedsam (default), sam_vit_b, sam_vit_l, sam_vit_h")
    sam.add_argument("--checkpoint", help="weights file (required for the SAM ViT models)")
    add_device(sam, help="auto (default: CUDA when present), cpu, cuda[:N]")
    add_precision(
        sam,
        choices=["fp32", "bf16"],
        help="encoder precision (default bf16; fp32 when clicks drive the prompt)",
    )
    sam.add_argument(
        "--encoder-backend",
        choices=["auto", "torch", "openvino"],
        help="what runs the image encoder (auto: OpenVINO on the CPU when installed)",
    )
    sam.add_argument(
        "--intensity",
        choices=["auto", "ct", "percentile", "rgb"],
        help="intensity scaling (auto: CT window for DICOM CT and for images whose values "
        "look like HU, RGB passthrough, else percentiles; the choice is logged)",
    )
    sam.add_argument("--window", help="CT window preset (abdomen, liver, lung, bone, brain …)")
    sam.add_argument("--level", type=float, help="CT window level in HU (with --width)")
    sam.add_argument("--width", type=float, help="CT window width in HU (with --level)")
    add_overwrite(sam, help="replace an existing output")
    sam.set_defaults(handler=_cmd_sam)
