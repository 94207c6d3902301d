"""``medseg infer``: segment images with a trained checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.cli._options import add_device, add_out, add_overwrite, add_precision
from medseg.core import ExitCode, parse_config

_INFER_EPILOG = """\
examples:
  medseg infer --model runs/drive data/retina_drive/test/images/01_test.tif --out pred/
  medseg infer --model runs/spleen image.nii.gz --out pred/ --tta --probabilities --precision bf16
  medseg infer --model nuclei data/cells_dsb2018/test/images/06350c7cc618be44.png --out pred/
"""


def _output_stem(path: Path) -> str:
    """Output name stem: the input's file name without .nii.gz/.nii/extension."""
    name = path.name
    if name.lower().endswith(".nii.gz"):
        return name[: -len(".nii.gz")]
    return path.stem if path.suffix else name


def _cmd_infer(args: argparse.Namespace) -> int:
    from medseg.core import InputError, read_yaml
    from medseg.inference import (
        InferConfig,
        predict_volume,
        resolve_instance_config,
        write_probabilities,
    )
    from medseg.io import read_image, write_nifti
    from medseg.models import load_checkpoint, resolve_model_path

    data = read_yaml(args.config) if args.config else {}
    for key in ("overlap", "precision", "device", "sw_batch_size"):
        value = getattr(args, key)
        if value is not None:
            data[key] = value
    if args.tta:
        data["mirror"] = True
    if args.probabilities:
        data["save_probabilities"] = True
    config = parse_config(InferConfig, data, source=args.config)
    if bool(args.inputs) == bool(args.manifest):
        raise InputError("give either INPUT files or --manifest (not both, not neither)")
    jobs: list[tuple[Path, str, str]] = []  # (image, output stem, case id for logs)
    if args.manifest:
        from medseg.io import Split, load_manifest, manifest_root

        manifest = load_manifest(args.manifest)
        root = manifest_root(args.manifest)
        splits = {Split(s) for s in args.splits}
        jobs = [(root / c.image, c.id, c.id) for c in manifest.cases if c.split in splits]
        if not jobs:
            raise InputError(f"no cases in split(s) {sorted(args.splits)}", path=args.manifest)
    else:
        jobs = [
            (path, f"{_output_stem(path)}_labels", f"input{i}")
            for i, path in enumerate(args.inputs)
        ]
    checkpoint = load_checkpoint(resolve_model_path(args.model))
    network = checkpoint.build(device="cpu")
    # a 3-class instance model (e.g. --model nuclei) writes instance ids 1..N, not classes
    instances = resolve_instance_config(checkpoint, config.instances)
    for path, name, case_id in jobs:
        volume = read_image(path)
        stem = name[: -len("_labels")] if name.endswith("_labels") else name
        prediction = predict_volume(
            network,
            volume,
            plans=checkpoint.plans,
            config=config,
            case_id=case_id,
            instances=instances,
        )
        label_path = args.out / f"{name}.nii.gz"
        write_nifti(prediction.labels, label_path, overwrite=args.overwrite)
        found = f", {int(prediction.labels.array.max())} instances" if instances else ""
        print(f"{label_path} ({prediction.seconds:.1f} s{found})")
        if prediction.probabilities is not None:
            prob_path = args.out / f"{stem}_probabilities.npz"
            write_probabilities(
                prediction.probabilities,
                prob_path,
                label_names=checkpoint.label_names,
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
    infer.add_argument("inputs", nargs="*", type=Path, metavar="INPUT")
    add_out(infer, help="output folder")
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
    infer.add_argument("--tta", action="store_true", help="mirror test-time augmentation")
    infer.add_argument(
        "--probabilities", action="store_true", help="also write float16 probabilities"
    )
    add_overwrite(infer, help="replace existing outputs")
    infer.set_defaults(handler=_cmd_infer)
