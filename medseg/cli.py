"""The ``medseg`` command line: parse arguments, load config, call the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from medseg import __version__
from medseg.core import (
    ConfigError,
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


_EVALUATE_EPILOG = """\
examples:
  medseg evaluate --pred preds/ --ref labels/ --out eval/
  medseg evaluate --pred preds/ --manifest data_manifests/ct_totalsegmentator.yaml --out eval/
  medseg evaluate --kind instance --pred nuclei_pred/ --ref nuclei_labels/ --out eval/
  medseg evaluate --pred case01.nii.gz --ref ref01.nii.gz --labels labels.yaml --out eval/ \\
      --tracking-uri http://127.0.0.1:5000 --model my-unet-v3

--labels FILE is YAML:  labels: {1: liver, 2: spleen}
Outputs: metrics.csv (case x label x metric), summary.json (statistics + definitions),
report.html (self-contained), and an MLflow run (default sqlite:///OUT/mlflow.db;
--tracking-uri or MLFLOW_TRACKING_URI for a server).
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


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import os

    from medseg.core import read_yaml
    from medseg.evaluation import (
        EvaluationKind,
        EvaluationSettings,
        LabelsConfig,
        evaluate_cases,
        evaluate_instance_cases,
        find_case_pairs,
        format_summary_table,
        write_metrics_csv,
        write_report_html,
        write_summary_json,
    )
    from medseg.io import load_manifest, manifest_root
    from medseg.tracking import (
        check_case_ids,
        default_tracking_uri,
        log_evaluation,
        start_tracking,
    )

    kind = EvaluationKind(args.kind)
    if kind is EvaluationKind.INSTANCE and (args.labels or args.binary):
        raise ConfigError("--labels and --binary apply to --kind semantic only")
    manifest = load_manifest(args.manifest) if args.manifest else None
    labels = None
    if args.labels:
        labels = parse_config(LabelsConfig, read_yaml(args.labels), source=args.labels).labels
    elif manifest is not None and manifest.labels and not args.binary:
        labels = dict(manifest.labels)
    pairs = find_case_pairs(
        args.pred,
        args.ref,
        manifest=manifest,
        manifest_root=manifest_root(args.manifest) if args.manifest else None,
    )
    check_case_ids([pair.case_id for pair in pairs])
    outputs = {name: args.out / name for name in ("metrics.csv", "summary.json", "report.html")}
    from medseg.core import OutputExistsError

    for path in outputs.values():
        if path.exists() and not args.overwrite:
            raise OutputExistsError(
                "output already exists; pass --overwrite to replace it", path=path
            )
    settings = EvaluationSettings(tolerance_mm=args.tolerance_mm, percentile=args.hd_percentile)
    if kind is EvaluationKind.INSTANCE:
        result = evaluate_instance_cases(pairs)
    else:
        result = evaluate_cases(
            pairs,
            labels=labels,
            settings=settings,
            binarize=args.binary,
            # a manifest lists every class of the dataset: report only those present
            skip_absent_labels=args.labels is None,
        )
    write_metrics_csv(result, outputs["metrics.csv"], overwrite=args.overwrite)
    write_summary_json(result, outputs["summary.json"], overwrite=args.overwrite)
    write_report_html(result, outputs["report.html"], overwrite=args.overwrite)
    print(format_summary_table(result))
    print(f"{len(result.case_ids)} cases x {len(result.labels)} labels in {result.seconds:.1f} s")
    for name, path in outputs.items():
        print(f"{name + ':':<14}{path}")
    if args.no_tracking:
        return ExitCode.OK
    tracking_uri = (
        args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(args.out)
    )
    params: dict[str, object] = {"model": args.model}
    tags: dict[str, object] = {}
    if manifest is not None:
        params["dataset"] = manifest.name
        params["dataset_manifest_sha256"] = compute_sha256(args.manifest)[:16]
        tags["reference_standard"] = manifest.reference_standard.value
    with start_tracking(
        tracking_uri=tracking_uri,
        experiment=args.experiment,
        run_name=f"evaluate-{args.model}",
        artifact_location=(args.out / "mlartifacts")
        if tracking_uri.startswith("sqlite:")
        else None,
    ) as tracker:
        log_evaluation(tracker, result, params=params, tags=tags, artifacts=list(outputs.values()))
        run_id = tracker.run_id
    print(f"MLflow run {run_id} at {tracking_uri}")
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

    evaluate = commands.add_parser(
        "evaluate",
        help="score predictions against references: metrics.csv, summary.json, report.html",
        description="Score predicted label maps against references per case and label: Dice, "
        "IoU, precision, recall, volume difference, Hausdorff, HD95, ASSD, MSD and normalised "
        "surface Dice (DeepMind surface-element definitions, distances in mm). Files or "
        "folders are matched by case id (file name without suffix). Writes metrics.csv, "
        "summary.json and a self-contained report.html to OUT, logs the run to MLflow and "
        "prints the summary.",
        epilog=_EVALUATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument("--pred", type=Path, required=True, help="prediction file or folder")
    evaluate.add_argument(
        "--kind",
        choices=["semantic", "instance"],
        default="semantic",
        help="semantic label maps (default) or instance label maps (cells, lesions: matching "
        "by IoU, F1@0.5, DSB 'AP' = mean TP/(TP+FP+FN) over IoU 0.5:0.95, PQ)",
    )
    evaluate.add_argument(
        "--ref", type=Path, help="reference file or folder (default: the manifest's labels)"
    )
    evaluate.add_argument(
        "--manifest", type=Path, help="dataset manifest: case ids, labels, references, hash"
    )
    evaluate.add_argument("--labels", type=Path, help="YAML 'labels: {id: name}' to evaluate")
    evaluate.add_argument(
        "--binary",
        action="store_true",
        help="binary masks: label 1 where value >= half the file's maximum (0/1, 0/255)",
    )
    evaluate.add_argument("--out", type=Path, required=True, help="output folder")
    evaluate.add_argument(
        "--tolerance-mm", type=float, default=2.0, help="surface Dice tolerance (default 2 mm)"
    )
    evaluate.add_argument(
        "--hd-percentile", type=float, default=95.0, help="robust Hausdorff percentile (95)"
    )
    evaluate.add_argument("--model", default="unknown", help="model name logged as a param")
    evaluate.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///OUT/mlflow.db)",
    )
    evaluate.add_argument("--experiment", default="medseg-evaluate", help="MLflow experiment")
    evaluate.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    evaluate.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    evaluate.set_defaults(handler=_cmd_evaluate)

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
