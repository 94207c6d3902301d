"""The ``medseg`` command line: parse arguments, load config, call the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from medseg.runner import BatchSummary

logger = logging.getLogger("medseg")

_DEMO_EPILOG = """\
examples:
  medseg demo                       # writes ./medseg-demo/
  medseg demo --out /tmp/demo --overwrite
"""

_RUN_EPILOG = """\
examples:
  medseg run pipelines/cell_nuclei_watershed.yaml --out runs/nuclei --workers 2
  medseg run pipelines/cell_nuclei_watershed.yaml --out runs/nuclei --resume
  medseg run pipelines/ct_organs_sam.yaml --out runs/ct --scheduler tcp://10.0.0.5:8786
"""


def _default_root() -> Path:
    """Folder holding ``data_manifests/``: the source checkout, else the working directory."""
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / "data_manifests").is_dir() else Path.cwd()


def _print_summary(summary: BatchSummary) -> None:
    print(f"cases: {summary.done} done, {summary.failed} failed, {summary.pending} pending")
    for name, value in summary.mean_metrics.items():
        print(f"  mean {name}: {value:.4f}")
    if summary.failures:
        print("failures:")
        width = max(len(case_id) for case_id, _, _ in summary.failures)
        for case_id, error_type, message in summary.failures:
            print(f"  {case_id:<{width}}  {error_type}: {message}")
    print(f"case outputs: {summary.out_dir / 'cases'}")
    print(f"summary:      {summary.out_dir / 'summary.json'}")
    if summary.run_id:
        print(f"MLflow run {summary.run_id} at {summary.tracking_uri}")
        print(f"  browse it with: mlflow ui --backend-store-uri {summary.tracking_uri}")


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
        description="Run pipelines/demo_ct_liver.yaml: load the bundled real CT DICOM "
        "series, segment the liver with LiteMedSAM from a reference box on each slice, "
        "score Dice against the TotalSegmentator label, log to MLflow (SQLite in OUT) and "
        "write the image and mask as NIfTI and a PNG overlay under OUT/cases/ct_dicom_01/.",
        epilog=_DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("medseg-demo"),
        help="output folder (default: ./medseg-demo)",
    )
    demo.add_argument("--overwrite", action="store_true", help="replace an earlier demo run")
    demo.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local Dask worker processes (default: 1; 0 runs in this process)",
    )
    demo.add_argument(
        "--root",
        type=Path,
        default=_default_root(),
        help="folder holding data_manifests/, data/ and pipelines/ (default: the checkout)",
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
    run.add_argument("--out", type=Path, required=True, help="output folder")
    run.add_argument(
        "--cases",
        type=Path,
        metavar="MANIFEST",
        help="dataset manifest to take the cases from (default: the pipeline's dataset)",
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
    run.add_argument("--overwrite", action="store_true", help="discard an earlier run in OUT")
    run.add_argument(
        "--root",
        type=Path,
        default=_default_root(),
        help="folder that relative dataset paths start from (default: the checkout)",
    )
    run.set_defaults(handler=_cmd_run)

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

    config = commands.add_parser("config", help="validate config files")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    validate = config_commands.add_parser(
        "validate",
        help="validate YAML configs against their schema",
        description="Validate YAML files; the kind is taken from --kind or from the folder "
        "(data_manifests/ → dataset, pipelines/ → pipeline).",
        epilog="example:\n  medseg config validate pipelines/demo_ct_liver.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    validate.add_argument("--kind", help="config kind (dataset, pipeline)")
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
