"""``medseg infer``: segment images with a trained checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from medseg.cli._inputs import (
    OutputFormat,
    check_2d_output,
    companion_path,
    expand_inputs,
    is_2d_image,
    output_stem,
    output_suffix,
    plan_outputs,
)
from medseg.cli._options import (
    add_device,
    add_mask_format,
    add_out,
    add_overwrite,
    add_path_alias,
    add_precision,
    default_root,
)
from medseg.core import ExitCode, check_distinct_outputs, check_output_path, progress

if TYPE_CHECKING:
    from medseg.inference import InferConfig
    from medseg.models import Checkpoint

_INFER_EPILOG = """\
examples:
  medseg infer --model runs/drive data/retina_drive/test/images/01_test.tif --out pred/
  medseg infer --model runs/spleen image.nii.gz --out pred/ --tta --probabilities --precision bf16
  medseg infer --model nuclei -i data/cells_dsb2018/test/images/06350c7cc618be44.png -o pred/
  medseg infer --model nuclei -i data/cells_dsb2018/test/images/ -o pred/     # a folder
  medseg infer --model nuclei -i 'cells/*.png' -o pred/ --format nifti        # a pattern
  medseg infer --model nuclei -i cells.png -o cells_mask.png                  # one file
  medseg infer --model brain-tumour --channel flair=F.nii.gz --channel t1c=T.nii.gz --out pred/
"""


def _label_entries(names: dict[int, str]) -> list[dict[str, object]]:
    """Label sidecar entries of a model's classes (background left out)."""
    from medseg.export import describe_labels, load_structure_codes

    codes_path = default_root() / "configs" / "export" / "structure_codes.yaml"
    code_map = load_structure_codes(codes_path) if codes_path.is_file() else None
    return describe_labels({v: n for v, n in names.items() if v > 0}, code_map=code_map)


def _infer_channels(args: argparse.Namespace, checkpoint: Checkpoint, config: InferConfig) -> int:
    """``medseg infer --channel NAME=FILE ...``: one multi-channel case."""
    from medseg.core import InputError
    from medseg.inference import parse_channel_arguments, predict_channels
    from medseg.io import check_channel_names, write_label_map

    if args.inputs or args.manifest:
        raise InputError("give either --channel NAME=FILE options or INPUT files, not both")
    channels = parse_channel_arguments(args.channel)
    check_channel_names(list(channels), expected=checkpoint.plans.image_keys)
    inputs = [*channels.values(), *([args.config] if args.config else [])]
    out_dir = check_output_path(args.out, folder=True, inputs=inputs, what="--out")
    grid_channel = checkpoint.plans.image_keys[0]
    label_path = out_dir / f"{output_stem(channels[grid_channel])}_labels.nii.gz"
    check_distinct_outputs([label_path], overwrite=args.overwrite)
    prediction = predict_channels(checkpoint, channels, config=config, case_id="input0")
    write_label_map(
        prediction.labels,
        label_path,
        entries=_label_entries(checkpoint.label_names),
        overwrite=args.overwrite,
    )
    print(f"{label_path} ({prediction.seconds:.1f} s)")
    return ExitCode.OK


def _probability_path(source: Path, labels: Path) -> Path:
    """Where probabilities go: a TIFF (one page per class, the image's (H, W)) beside a
    PNG/TIFF mask, NIfTI beside a 2D image's NIfTI mask, else ``.npz`` (float16)."""
    if labels.name.lower().endswith((".png", ".tif", ".tiff")):
        return companion_path(labels, "_probabilities", ".tif")
    if is_2d_image(source):
        return companion_path(labels, "_probabilities", ".nii.gz")
    return companion_path(labels, "_probabilities", ".npz")


def _plan_jobs(args: argparse.Namespace) -> list[tuple[Path, Path, str]]:
    """(image, label output, case id for logs) per input, outputs checked; no heavy import."""
    from medseg.core import InputError

    fmt = OutputFormat(args.format)
    if args.manifest:
        from medseg.io import Split, load_manifest, manifest_root

        manifest = load_manifest(args.manifest)
        root = manifest_root(args.manifest)
        splits = {Split(s) for s in args.splits}
        cases = [c for c in manifest.cases if c.split in splits]
        if not cases:
            raise InputError(f"no cases in split(s) {sorted(args.splits)}", path=args.manifest)
        reads = [root / c.image for c in cases]
        out_dir = check_output_path(
            args.out,
            folder=True,
            inputs=[*reads, args.manifest, *([args.config] if args.config else [])],
            what="--out",
        )
        # named <case id>.nii.gz (as evaluate --manifest pairs them) unless --format says
        suffix = ".nii.gz" if fmt is OutputFormat.AUTO else output_suffix(Path("x.png"), fmt)
        outputs = [out_dir / f"{c.id}{suffix}" for c in cases]
        for image, path in zip(reads, outputs, strict=True):
            check_2d_output(image, path, what="--format")
        check_distinct_outputs(outputs, overwrite=args.overwrite)
        return [(image, path, c.id) for image, path, c in zip(reads, outputs, cases, strict=True)]
    inputs = expand_inputs(args.inputs)
    outputs = plan_outputs(
        inputs,
        args.out,
        tag="_labels",
        fmt=fmt,
        overwrite=args.overwrite,
        reads=[args.config] if args.config else [],
    )
    return [
        (path, out, f"input{i}") for i, (path, out) in enumerate(zip(inputs, outputs, strict=True))
    ]


def _cmd_infer(args: argparse.Namespace) -> int:
    from medseg.core import ChannelError, InputError, read_yaml

    if not args.channel and bool(args.inputs) == bool(args.manifest):
        raise InputError("give either INPUT files or --manifest (not both, not neither)")
    # inputs and outputs are checked before torch and MONAI are imported (seconds)
    jobs = [] if args.channel else _plan_jobs(args)
    if args.probabilities:
        check_distinct_outputs(
            [_probability_path(image, out) for image, out, _ in jobs], overwrite=args.overwrite
        )
    data = read_yaml(args.config) if args.config else {}
    for key in ("overlap", "precision", "device", "sw_batch_size"):
        value = getattr(args, key)
        if value is not None:
            data[key] = value
    if args.tta is not None:  # --tta / --no-tta; absent: the config's or the model's choice
        data["mirror"] = args.tta
    if args.probabilities:
        data["save_probabilities"] = True
    if args.confidence:
        data["confidence"] = True

    from medseg.inference import (
        is_instance_detector,
        predict_volume,
        resolve_infer_config,
        resolve_instance_config,
        write_probabilities,
    )
    from medseg.io import read_image, write_image, write_label_map, write_nifti
    from medseg.models import load_checkpoint, resolve_model_path

    checkpoint = load_checkpoint(resolve_model_path(args.model))
    config = resolve_infer_config(checkpoint, data, source=args.config)
    if args.channel:
        return _infer_channels(args, checkpoint, config)
    if len(checkpoint.plans.image_keys) > 1:
        raise ChannelError(
            f"this model takes {len(checkpoint.plans.image_keys)} named channels "
            f"({', '.join(checkpoint.plans.image_keys)}); give each as --channel NAME=FILE",
            expected=list(checkpoint.plans.image_keys),
        )
    if config.save_probabilities and not args.probabilities:  # asked for by the config
        check_distinct_outputs(
            [_probability_path(image, out) for image, out, _ in jobs], overwrite=args.overwrite
        )
    if config.confidence:
        kinds = ["confidence", "tta_disagreement"] if config.mirror else ["confidence"]
        check_distinct_outputs(
            [companion_path(out, f"_{kind}", ".nii.gz") for _, out, _ in jobs for kind in kinds],
            overwrite=args.overwrite,
        )
    network = checkpoint.build(device="cpu")
    # a 3-class instance model (e.g. --model nuclei) writes instance ids 1..N, not classes
    instances = resolve_instance_config(checkpoint, config.instances)
    instance_map = bool(instances) or is_instance_detector(network)  # object ids: no names
    for path, label_path, case_id in progress(jobs, description="infer", unit="image"):
        volume = read_image(path)
        prediction = predict_volume(
            network,
            volume,
            plans=checkpoint.plans,
            config=config,
            case_id=case_id,
            instances=instances,
        )
        write_label_map(  # dcm2niix's array order for DICOM input; names in a sidecar
            prediction.labels,
            label_path,
            entries=None if instance_map else _label_entries(checkpoint.label_names),
            source=volume,
            overwrite=args.overwrite,
        )
        found = f", {int(prediction.labels.array.max())} instances" if instances else ""
        print(f"{label_path} ({prediction.seconds:.1f} s{found})")
        for kind, extra in (
            ("confidence", prediction.confidence),
            ("tta_disagreement", prediction.disagreement),
        ):
            if extra is not None:
                extra_path = companion_path(label_path, f"_{kind}", ".nii.gz")
                write_nifti(extra, extra_path, overwrite=args.overwrite)
                print(f"{extra_path}")
        if prediction.probabilities is not None:
            prob_path = _probability_path(path, label_path)
            if prob_path.suffix == ".npz":
                write_probabilities(
                    prediction.probabilities,
                    prob_path,
                    label_names=checkpoint.label_names,
                    overwrite=args.overwrite,
                )
            else:  # float32: NIfTI has no float16, and TIFF readers vary on it
                probabilities = prediction.probabilities
                write_image(
                    probabilities.with_array(probabilities.array.astype("float32")),
                    prob_path,
                    overwrite=args.overwrite,
                )
            print(f"{prob_path}")
    return ExitCode.OK


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this group's subcommands to ``commands``."""
    infer = commands.add_parser(
        "infer",
        help="segment images with a trained checkpoint (sliding window, TTA, postprocessing)",
        description="Preprocess each input with the checkpoint's plans, predict by sliding "
        "window with Gaussian blending, resample back to the input grid, postprocess and "
        "write <name>_labels.nii.gz with the input's shape and affine. An instance model "
        "(e.g. the shipped 'nuclei') writes an instance map: 0 background, 1..N one object "
        "each, separated by a marker watershed.",
        epilog=_INFER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    infer.add_argument(
        "--model",
        required=True,
        metavar="CKPT|NAME",
        help="checkpoint .pt, a training run folder (its best, else last checkpoint) or the "
        "name of a model shipped with medseg (see medseg/models/shipped/)",
    )
    add_path_alias(
        infer,
        dest="inputs",
        flags=("-i", "--input"),
        metavar="INPUT",
        many=True,
        help="images: files (DICOM folder/zip, NIfTI, NRRD, MHA, PNG, TIFF …), folders of "
        "images (one output each) or quoted glob patterns ('scans/*.nii.gz')",
    )
    infer.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="one input channel of a multi-channel model (repeat, e.g. --channel flair=F.nii.gz "
        "--channel t1c=T.nii.gz); writes <first channel's stem>_labels.nii.gz on its grid",
    )
    add_out(
        infer,
        help="output folder (one <name>_labels.<ext> per input), or the output file itself "
        "when it ends in .png/.tif/.nii.gz/.nii/.nrrd/.mha (one input)",
    )
    add_mask_format(
        infer,
        help="mask file type in an output folder (auto: PNG for PNG/JPEG/GIF inputs, TIFF for "
        "TIFF, NIfTI for volumes; --manifest: NIfTI)",
    )
    infer.add_argument(
        "--manifest",
        type=Path,
        help="segment the images of this dataset manifest's cases instead of INPUT files; "
        "outputs are named <case id>.nii.gz, as medseg evaluate --manifest pairs them",
    )
    infer.add_argument(
        "--splits", nargs="+", default=["test"], help="manifest splits to segment (test)"
    )
    infer.add_argument("--config", type=Path, help="inference config YAML (InferConfig)")
    infer.add_argument("--overlap", type=float, help="window overlap (0.5)")
    infer.add_argument("--sw-batch-size", type=int, help="windows per forward pass (4)")
    add_precision(
        infer,
        choices=["auto", "fp32", "bf16", "fp16"],
        help="autocast (auto: fp32 on CPU, bf16/fp16 on CUDA)",
    )
    add_device(infer, help="auto, cpu or cuda[:N] (auto)")
    infer.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mirror test-time augmentation (default: the model's own setting, e.g. on for "
        "the shipped nuclei model)",
    )
    infer.add_argument(
        "--probabilities",
        action="store_true",
        help="also write probabilities: a float32 TIFF (one page per class, the image's "
        "(H, W)) beside a PNG/TIFF mask, NIfTI beside a 2D image's NIfTI mask, float16 .npz "
        "for volumes",
    )
    infer.add_argument(
        "--confidence",
        action="store_true",
        help="also write <name>_confidence.nii.gz (largest class probability per voxel, "
        "the input's grid) and, with --tta, <name>_tta_disagreement.nii.gz (share of "
        "mirrored passes whose class differs from the averaged prediction)",
    )
    add_overwrite(infer, help="replace existing outputs")
    infer.set_defaults(handler=_cmd_infer)
