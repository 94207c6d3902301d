"""``medseg demo`` and ``medseg run``: a task pipeline over a dataset's cases."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from medseg.cli._options import add_out, add_overwrite, add_root
from medseg.cli._tables import print_table
from medseg.core import ExitCode, load_config

if TYPE_CHECKING:
    from medseg.runner import BatchSummary

_DEMO_EPILOG = """\
examples:
  medseg demo                       # writes ./medseg-demo/
  medseg demo --out /tmp/demo --overwrite
  medseg demo --resume              # continue an interrupted demo in ./medseg-demo/
"""

_RUN_EPILOG = """\
examples:
  medseg run pipelines/cell_nuclei_watershed.yaml --out runs/nuclei --workers 2
  medseg run pipelines/cell_nuclei_watershed.yaml --out runs/nuclei --resume
  medseg run pipelines/ct_organs.yaml --out runs/ct --scheduler tcp://10.0.0.5:8786
  medseg run pipelines/ct_organs.yaml --cases my_cts/ --out runs/mine   # images/, labels/
  medseg run pipelines/ct_organs.yaml --cases my.yaml --out runs/mine

my.yaml (paths relative to it; source, licence, sha256 … optional, recorded as unknown):
  cases:
    - {id: case01, image: case01.nii.gz, label: case01_seg.nii.gz}
"""


def _print_summary(summary: BatchSummary) -> None:
    print(f"cases: {summary.done} done, {summary.failed} failed, {summary.pending} pending")
    for name, value in summary.mean_metrics.items():
        print(f"  mean {name}: {value:.4f}")
    if summary.failures:
        print("failures:")
        print_table(("case", "error", "message"), summary.failures)
    print(f"case outputs: {summary.out_dir / 'cases'}")
    print(f"summary:      {summary.out_dir / 'summary.json'}")
    if summary.run_id:
        print(f"MLflow run {summary.run_id} at {summary.tracking_uri}")
        print(f"  browse it with: mlflow ui --backend-store-uri {summary.tracking_uri}")
        if summary.experiment_id and summary.tracking_uri:
            from medseg.tracking import format_run_view

            page = format_run_view(summary.tracking_uri, summary.experiment_id, summary.run_id)[1]
            print(f"  then open the run: {page}")


def _run(args: argparse.Namespace, pipeline_path: Path) -> int:
    from medseg.runner import PipelineConfig, run_pipeline

    config = load_config(pipeline_path, PipelineConfig)
    summary = run_pipeline(
        config,
        root=args.root,
        out_dir=args.out,
        manifest_path=getattr(args, "cases", None),
        workers=args.workers,
        scheduler=getattr(args, "scheduler", None),
        resume=getattr(args, "resume", False),
        overwrite=args.overwrite,
    )
    _print_summary(summary)
    return ExitCode.OK if summary.failed == 0 and summary.pending == 0 else ExitCode.FAILURE


def _cmd_demo(args: argparse.Namespace) -> int:
    return _run(args, args.root / "pipelines" / "demo_ct_liver.yaml")


def _cmd_run(args: argparse.Namespace) -> int:
    return _run(args, args.pipeline)


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this group's subcommands to ``commands``."""
    demo = commands.add_parser(
        "demo",
        help="segment the liver on the bundled real CT with LiteMedSAM",
        description="Run pipelines/demo_ct_liver.yaml: load the bundled real CT DICOM "
        "series, segment the liver with LiteMedSAM from a reference box on each slice, "
        "score Dice against the TotalSegmentator label, log to MLflow (SQLite in OUT) and "
        "write the image and mask as NIfTI and a PNG overlay under OUT/cases/ct_dicom_01/.",
        epilog=_DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_out(demo, default=Path("medseg-demo"), help="output folder (default: ./medseg-demo)")
    demo.add_argument(
        "--resume", action="store_true", help="continue an interrupted demo run in OUT"
    )
    add_overwrite(demo, help="replace an earlier demo run")
    demo.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local Dask worker processes (default: 1; 0 runs in this process)",
    )
    add_root(
        demo, help="folder holding data_manifests/, data/ and pipelines/ (default: the checkout)"
    )
    demo.set_defaults(handler=_cmd_demo)

    run = commands.add_parser(
        "run",
        help="run a task pipeline over a dataset's cases (Dask, resumable)",
        description="Run pipelines/<task>.yaml over its dataset's cases on a local Dask "
        "cluster (or an existing scheduler). Per-case state lives in OUT/state.sqlite; each "
        "case's outputs appear atomically in OUT/cases/<case>/; --resume skips done cases "
        "and retries failed or interrupted ones. Exits 1 if any case failed.",
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("pipeline", type=Path, metavar="PIPELINE", help="pipeline YAML file")
    add_out(run, help="output folder")
    run.add_argument(
        "--cases",
        type=Path,
        metavar="CASES",
        help="your cases instead of the pipeline's dataset: a manifest YAML (paths relative "
        "to it; only 'cases:' required), a folder of images (labels of the same names in "
        "labels/), or an nnU-Net dataset.json; all of them are run",
    )
    where = run.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local Dask worker processes (default: 1; 0 runs in this process)",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="address of an existing Dask scheduler, e.g. tcp://host:8786",
    )
    run.add_argument("--resume", action="store_true", help="continue the run in OUT")
    add_overwrite(run, help="discard an earlier run in OUT")
    add_root(run, help="folder that relative dataset paths start from (default: the checkout)")
    run.set_defaults(handler=_cmd_run)
