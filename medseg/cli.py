"""The ``medseg`` command line: parse arguments, load config, call the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from medseg import __version__
from medseg.core import (
    ExitCode,
    LogLevel,
    MedsegError,
    compute_sha256,
    configure_logging,
    load_config,
    parse_config,
)

logger = logging.getLogger("medseg")

_DEMO_EPILOG = """\
examples:
  medseg demo                       # writes ./medseg-demo/
  medseg demo --out /tmp/demo --overwrite
  medseg demo --config pipelines/demo_ct_liver.yaml
"""


def _default_root() -> Path:
    """Folder holding ``data_manifests/``: the source checkout, else the working directory."""
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / "data_manifests").is_dir() else Path.cwd()


def _cmd_demo(args: argparse.Namespace) -> int:
    from medseg.runner import DemoConfig, run_demo

    config = load_config(args.config, DemoConfig) if args.config else parse_config(DemoConfig, {})
    result = run_demo(config, repo_root=args.root, out_dir=args.out, overwrite=args.overwrite)
    print(
        f"Dice ({config.structure}, LiteMedSAM, box per slice vs reference): "
        f"{result.dice:.4f} over {result.n_prompted_slices} prompted slices "
        f"in {result.seconds:.1f} s"
    )
    print(f"image (NIfTI):   {result.image_path}")
    print(f"mask (NIfTI):    {result.mask_path}")
    print(f"overlay (PNG):   {result.overlay_path}")
    print(f"metrics (JSON):  {result.metrics_path}")
    print(f"config (YAML):   {result.config_path}")
    print(f"MLflow run {result.run_id} at {result.tracking_uri}")
    print(f"  browse it with: mlflow ui --backend-store-uri {result.tracking_uri}")
    return ExitCode.OK


def _cmd_manifest_verify(args: argparse.Namespace) -> int:
    from medseg.io import verify_manifest

    for path in args.manifests:
        manifest = verify_manifest(path)
        print(f"OK {path}: {len(manifest.files)} files, {len(manifest.cases)} cases")
    return ExitCode.OK


def _cmd_manifest_hash(args: argparse.Namespace) -> int:
    entries = []
    for given in args.paths:
        files = sorted(p for p in given.rglob("*") if p.is_file()) if given.is_dir() else [given]
        entries += [{"path": p.as_posix(), "sha256": compute_sha256(p)} for p in files]
    import yaml

    print(yaml.safe_dump({"files": entries}, sort_keys=False), end="")
    return ExitCode.OK


def _cmd_config_validate(args: argparse.Namespace) -> int:
    from medseg.core import read_yaml
    from medseg.runner import config_schema

    for path in args.files:
        schema = config_schema(args.kind, path)
        parse_config(schema, read_yaml(path), source=path)
        print(f"OK {path} ({schema.__name__})")
    return ExitCode.OK


_PLAN_EPILOG = """\
examples:
  medseg plan data_manifests/retina_drive.yaml --out plans/retina_drive.yaml
  medseg plan data_manifests/ct_msd_spleen.yaml --out plans.yaml --splits test --memory-gb 4
"""

_TRAIN_EPILOG = """\
examples:
  medseg train configs/training/retina_drive_unet2d.yaml --out runs/drive
  medseg train configs/training/retina_drive_unet2d.yaml --out runs/drive --resume
  torchrun --nproc_per_node 2 -m medseg train CONFIG --out runs/ddp   # DDP (gloo on CPU)
"""

_INFER_EPILOG = """\
examples:
  medseg infer --model runs/drive data/retina_drive/test/images/01_test.tif --out pred/
  medseg infer --model runs/spleen image.nii.gz --out pred/ --tta --probabilities --precision bf16
"""


def _resolve(path: str | Path, root: Path) -> Path:
    """A config-relative path: as given if it exists, else under ``root``."""
    path = Path(path)
    return path if path.is_absolute() or path.exists() else root / path


def _cmd_plan(args: argparse.Namespace) -> int:
    from medseg.core import atomic_output, dump_config
    from medseg.io import Split, load_manifest, manifest_root
    from medseg.transforms import compute_fingerprint, plan_from_fingerprint

    manifest = load_manifest(args.manifest)
    splits = [Split(s) for s in args.splits]
    fingerprint = compute_fingerprint(manifest, root=manifest_root(args.manifest), splits=splits)
    plans = plan_from_fingerprint(
        fingerprint, memory_budget_gb=args.memory_gb, features=args.features
    )
    with atomic_output(args.out, overwrite=args.overwrite) as tmp:
        tmp.write_text(dump_config(plans), encoding="utf-8")
    print(
        f"plans for {plans.dataset} ({len(fingerprint.cases)} case(s), {plans.spatial_dims}D, "
        f"{plans.in_channels} channel(s), {plans.out_channels} classes)"
    )
    print(f"  target spacing: {[round(v, 4) for v in plans.target_spacing_mm]} mm")
    print(f"  patch size:     {plans.patch_size}, batch {plans.batch_size}, depth {plans.depth}")
    print(f"  normalisation:  {', '.join(n.scheme.value for n in plans.normalization)}")
    print(f"written to {args.out}")
    return ExitCode.OK


def _cmd_train(args: argparse.Namespace) -> int:
    import contextlib
    import os

    from medseg.core import atomic_output
    from medseg.evaluation import compute_dice
    from medseg.io import load_manifest
    from medseg.tracking import default_tracking_uri, start_tracking
    from medseg.training import TrainConfig, check_plans_match, train_model
    from medseg.transforms import Plans, compute_fingerprint, plan_from_fingerprint

    config = load_config(args.config, TrainConfig)
    manifest_path = _resolve(config.manifest, args.root)
    manifest = load_manifest(manifest_path)
    if config.plans:
        plans = load_config(_resolve(config.plans, args.root), Plans)
    else:
        fingerprint = compute_fingerprint(
            manifest, root=args.root, splits=config.train_splits, seed=config.seed
        )
        plans = plan_from_fingerprint(fingerprint, memory_budget_gb=config.memory_budget_gb)
    check_plans_match(plans, manifest)
    is_rank0 = int(os.environ.get("RANK", "0")) == 0
    tracking: contextlib.AbstractContextManager = contextlib.nullcontext()
    if is_rank0:
        args.out.mkdir(parents=True, exist_ok=True)
        tracking = start_tracking(
            tracking_uri=config.tracking_uri or default_tracking_uri(args.out),
            experiment=config.experiment,
            run_name=f"{plans.dataset}-{config.model.name}",
        )
    with tracking as tracker:
        result = train_model(
            config,
            plans=plans,
            manifest=manifest,
            root=args.root,
            out_dir=args.out,
            resume=args.resume,
            overwrite=args.overwrite,
            run_logger=tracker,
            score_fn=compute_dice,
        )
        run_id = tracker.run_id if tracker is not None else None
    if not is_rank0:
        return ExitCode.OK
    with atomic_output(args.out / "train_result.json", overwrite=True) as tmp:
        import json

        tmp.write_text(
            json.dumps(
                {
                    "epochs_completed": result.epochs_completed,
                    "best_val_dice": result.best_metric,
                    "validation": result.validation,
                    "seconds": round(result.seconds, 1),
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    print(
        f"trained {config.model.name} on {plans.dataset}: {result.epochs_completed} epoch(s) in "
        f"{result.seconds:.0f} s, best validation Dice {result.best_metric:.4f}"
    )
    print(f"last checkpoint: {result.last_checkpoint}")
    if result.best_checkpoint is not None:
        print(f"best checkpoint: {result.best_checkpoint}")
    print(f"MLflow run {run_id} at {config.tracking_uri or default_tracking_uri(args.out)}")
    return ExitCode.OK


def _output_stem(path: Path) -> str:
    """Output name stem: the input's file name without .nii.gz/.nii/extension."""
    name = path.name
    if name.lower().endswith(".nii.gz"):
        return name[: -len(".nii.gz")]
    return path.stem if path.suffix else name


def _cmd_infer(args: argparse.Namespace) -> int:
    from medseg.core import read_yaml
    from medseg.inference import InferConfig, predict_volume, write_probabilities
    from medseg.io import read_image, write_nifti
    from medseg.models import load_checkpoint

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
    model_path = args.model
    if model_path.is_dir():
        best = model_path / "checkpoint_best.pt"
        model_path = best if best.exists() else model_path / "checkpoint_last.pt"
    checkpoint = load_checkpoint(model_path)
    network = checkpoint.build(device="cpu")
    for index, path in enumerate(args.inputs):
        volume = read_image(path)
        stem = _output_stem(path)
        prediction = predict_volume(
            network, volume, plans=checkpoint.plans, config=config, case_id=f"input{index}"
        )
        label_path = args.out / f"{stem}_labels.nii.gz"
        write_nifti(prediction.labels, label_path, overwrite=args.overwrite)
        print(f"{label_path} ({prediction.seconds:.1f} s)")
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every working subcommand."""
    parser = argparse.ArgumentParser(
        prog="medseg",
        description="Medical images to validated, reviewable segmentations.",
    )
    parser.add_argument("--version", action="version", version=f"medseg {__version__}")
    parser.add_argument(
        "--log-level",
        choices=[lvl.value for lvl in LogLevel],
        default="info",
        help="log verbosity; 'debug' also prints tracebacks (default: info)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="segment the liver on the bundled real CT with LiteMedSAM",
        description="Load the bundled real CT DICOM series, segment the liver with LiteMedSAM "
        "from a reference box on each slice, score Dice against the "
        "TotalSegmentator label, log to MLflow (SQLite in OUT) and write a NIfTI "
        "mask and a PNG overlay.",
        epilog=_DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("medseg-demo"),
        help="output folder (default: ./medseg-demo)",
    )
    demo.add_argument(
        "--config",
        type=Path,
        help="demo config YAML (default: built-in, the same as pipelines/demo_ct_liver.yaml)",
    )
    demo.add_argument(
        "--root",
        type=Path,
        default=_default_root(),
        help="folder holding data_manifests/ and data/ (default: the checkout)",
    )
    demo.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    demo.set_defaults(handler=_cmd_demo)

    manifest = commands.add_parser("manifest", help="check or build dataset manifests")
    manifest_commands = manifest.add_subparsers(
        dest="manifest_command", metavar="ACTION", required=True
    )
    verify = manifest_commands.add_parser(
        "verify",
        help="re-hash every file of a manifest; exit 10 naming each bad file",
        description="Validate dataset manifests and re-hash every listed file. Exits non-zero "
        "naming each missing or altered file.",
        epilog="example:\n  medseg manifest verify data_manifests/*.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("manifests", nargs="+", type=Path, metavar="MANIFEST")
    verify.set_defaults(handler=_cmd_manifest_verify)
    hash_cmd = manifest_commands.add_parser(
        "hash",
        help="print the files: section (path + sha256) for files or folders",
        description="Print a YAML 'files:' list with the SHA-256 of every file under PATHs, "
        "paths as given (run it from the repository root).",
        epilog="example:\n  medseg manifest hash data/ct_totalsegmentator",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    hash_cmd.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    hash_cmd.set_defaults(handler=_cmd_manifest_hash)

    plan = commands.add_parser(
        "plan",
        help="fingerprint a dataset and write training plans (spacing, patch, batch, norm)",
        description="Measure the training cases of a manifest (spacings, shapes, foreground "
        "intensity percentiles, class frequencies) and derive plans: target spacing, patch "
        "and batch size for a memory budget, normalisation per channel, network strides.",
        epilog=_PLAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plan.add_argument("manifest", type=Path, metavar="MANIFEST")
    plan.add_argument("--out", type=Path, required=True, help="plans YAML to write")
    plan.add_argument(
        "--splits", nargs="+", default=["train"], help="manifest splits to plan from (train)"
    )
    plan.add_argument(
        "--memory-gb", type=float, default=8.0, help="training memory budget in GB (8)"
    )
    plan.add_argument("--features", type=int, default=32, help="first-level feature maps (32)")
    plan.add_argument("--overwrite", action="store_true", help="replace an existing file")
    plan.set_defaults(handler=_cmd_plan)

    train = commands.add_parser(
        "train",
        help="train a segmenter from a training config (checkpoints, MLflow, resume, DDP)",
        description="Train the configured network on the manifest's training split with "
        "plans-based MONAI transforms; validate by sliding window with Dice; write "
        "checkpoint_last.pt / checkpoint_best.pt (with plans, labels and config inside) and "
        "log to MLflow (sqlite in OUT unless the config names a tracking_uri). Relative "
        "paths in the config are taken from the working directory, else from --root.",
        epilog=_TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("config", type=Path, metavar="CONFIG")
    train.add_argument("--out", type=Path, required=True, help="run folder")
    train.add_argument(
        "--root",
        type=Path,
        default=_default_root(),
        help="folder holding data_manifests/ and data/ (default: the checkout)",
    )
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument("--overwrite", action="store_true", help="start again in OUT")
    train.set_defaults(handler=_cmd_train)

    infer = commands.add_parser(
        "infer",
        help="segment images with a trained checkpoint (sliding window, TTA, postprocessing)",
        description="Preprocess each input with the checkpoint's plans, predict by sliding "
        "window with Gaussian blending, resample back to the input grid, postprocess and "
        "write <name>_labels.nii.gz with the input's shape and affine.",
        epilog=_INFER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    infer.add_argument(
        "--model",
        type=Path,
        required=True,
        metavar="CKPT",
        help="checkpoint .pt, or a training run folder (uses its best, else last checkpoint)",
    )
    infer.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    infer.add_argument("--out", type=Path, required=True, help="output folder")
    infer.add_argument("--config", type=Path, help="inference config YAML (InferConfig)")
    infer.add_argument("--overlap", type=float, help="window overlap (0.5)")
    infer.add_argument("--sw-batch-size", type=int, help="windows per forward pass (4)")
    infer.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="autocast (fp32)")
    infer.add_argument("--device", help="auto, cpu or cuda[:N] (auto)")
    infer.add_argument("--tta", action="store_true", help="mirror test-time augmentation")
    infer.add_argument(
        "--probabilities", action="store_true", help="also write float16 probabilities"
    )
    infer.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    infer.set_defaults(handler=_cmd_infer)

    config = commands.add_parser("config", help="validate config files")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    validate = config_commands.add_parser(
        "validate",
        help="validate YAML configs against their schema",
        description="Validate YAML files; the kind is taken from --kind or from the folder "
        "(data_manifests/ → dataset, pipelines/ → demo).",
        epilog="example:\n  medseg config validate pipelines/demo_ct_liver.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    validate.add_argument("--kind", help="config kind (dataset, demo)")
    validate.set_defaults(handler=_cmd_config_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medseg`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return int(handler(args))
    except MedsegError as err:
        logger.debug("failed", exc_info=True)
        print(f"medseg: error: {err}", file=sys.stderr)
        return int(err.exit_code)
    except KeyboardInterrupt:
        print("medseg: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        logger.debug("internal error", exc_info=True)
        print(
            f"medseg: internal error ({type(err).__name__}); rerun with --log-level debug "
            "for the traceback",
            file=sys.stderr,
        )
        return int(ExitCode.INTERNAL)


if __name__ == "__main__":
    sys.exit(main())
