"""``medseg plan`` and ``medseg train``: training plans and training runs."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from medseg.cli._options import add_out, add_overwrite, add_root
from medseg.core import ExitCode, load_config

_PLAN_EPILOG = """\
examples:
  medseg plan data_manifests/retina_drive.yaml --out runs/retina_plans.yaml
  medseg plan data_manifests/ct_msd_spleen.yaml --out plans.yaml --splits test --memory-gb 4
"""

_TRAIN_EPILOG = """\
examples:
  medseg train configs/training/retina_drive_unet2d.yaml --out runs/drive
  medseg train configs/training/retina_drive_unet2d.yaml --out runs/drive --resume
  torchrun --nproc_per_node 2 -m medseg train CONFIG --out runs/ddp   # DDP (gloo on CPU)
"""


def _finite_or_none(value: float) -> float | None:
    """``value``, or None where it is NaN or infinite (JSON has no NaN)."""
    return value if math.isfinite(value) else None


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
    from medseg.evaluation import compute_dice, compute_instance_metrics
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
            instance_score_fn=lambda pred, ref: compute_instance_metrics(pred, ref).at(0.5).f1,
        )
        run_id = tracker.run_id if tracker is not None else None
    if not is_rank0:
        return ExitCode.OK
    instance = config.model.name == "maskrcnn"
    metric_key = "best_val_f1_at_0.5" if instance else "best_val_dice"
    with atomic_output(args.out / "train_result.json", overwrite=True) as tmp:
        import json

        tmp.write_text(
            json.dumps(
                {
                    "epochs_completed": result.epochs_completed,
                    # null, not NaN (invalid JSON), when no validation ran
                    metric_key: _finite_or_none(result.best_metric),
                    "validation": [
                        [epoch, _finite_or_none(score)] for epoch, score in result.validation
                    ],
                    "seconds": round(result.seconds, 1),
                    "cpu_seconds": round(result.cpu_seconds, 1),
                },
                indent=2,
                allow_nan=False,
            ),
            encoding="utf-8",
        )
    print(
        f"trained {config.model.name} on {plans.dataset}: {result.epochs_completed} epoch(s) in "
        f"{result.seconds:.0f} s ({result.cpu_seconds:.0f} s CPU), best validation "
        f"{'F1@0.5' if instance else 'Dice'} "
        f"{result.best_metric:.4f}"
    )
    print(f"last checkpoint: {result.last_checkpoint}")
    if result.best_checkpoint is not None:
        print(f"best checkpoint: {result.best_checkpoint}")
    print(f"MLflow run {run_id} at {config.tracking_uri or default_tracking_uri(args.out)}")
    return ExitCode.OK


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this group's subcommands to ``commands``."""
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
    add_out(plan, help="plans YAML to write")
    plan.add_argument(
        "--splits", nargs="+", default=["train"], help="manifest splits to plan from (train)"
    )
    plan.add_argument(
        "--memory-gb", type=float, default=8.0, help="training memory budget in GB (8)"
    )
    plan.add_argument("--features", type=int, default=32, help="first-level feature maps (32)")
    add_overwrite(plan, help="replace an existing file")
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
    add_out(train, help="run folder")
    add_root(train, help="folder holding data_manifests/ and data/ (default: the checkout)")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    add_overwrite(train, help="start again in OUT")
    train.set_defaults(handler=_cmd_train)
