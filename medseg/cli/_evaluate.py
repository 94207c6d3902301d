"""``medseg evaluate``: score predictions against references."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from medseg.cli._options import add_deprecated_alias, add_out, add_overwrite, add_root
from medseg.core import ConfigError, ExitCode, check_output_path, compute_sha256, parse_config

logger = logging.getLogger(__name__)

_EVALUATE_EPILOG = """\
examples:
  medseg evaluate --pred preds/ --ref labels/ --out eval/
  medseg evaluate --pred preds/ --manifest data_manifests/ct_totalsegmentator.yaml --out eval/
  medseg evaluate --kind instance --pred nuclei_pred/ --ref nuclei_labels/ --out eval/
  medseg evaluate --pred case01.nii.gz --ref ref01.nii.gz --labels labels.yaml --out eval/ \\
      --tracking-uri http://127.0.0.1:5000 --run-label my-unet-v3

--labels FILE is YAML:  labels: {1: liver, 2: spleen}
Outputs: metrics.csv (case x label x metric), summary.json (statistics + definitions),
report.html (self-contained), and an MLflow run (default sqlite:///OUT/mlflow.db;
--tracking-uri or MLFLOW_TRACKING_URI for a server).
"""


def _with_images(pairs: list, images: Path) -> list:  # type: ignore[type-arg]
    """Set each pair's image from ``--image``: one file (one case) or a folder of files
    named ``<case id>.<suffix>``."""
    import dataclasses

    from medseg.core import InputError
    from medseg.evaluation import case_id_of

    if not images.exists():
        raise InputError("image path not found", path=images)
    if images.is_file():
        if len(pairs) != 1:
            raise InputError("one --image file needs one case; give a folder", path=images)
        return [dataclasses.replace(pairs[0], image=images)]
    by_case = {case_id_of(p): p for p in sorted(images.iterdir()) if not p.name.startswith(".")}
    return [dataclasses.replace(p, image=by_case.get(p.case_id, p.image)) for p in pairs]


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from medseg.core import read_yaml
    from medseg.evaluation import (
        EvaluationKind,
        EvaluationSettings,
        LabelsConfig,
        evaluate_cases,
        evaluate_instance_cases,
        find_case_pairs,
        find_claimed_labels,
        find_reference_names,
        format_instance_summary,
        format_summary_table,
        match_claims_to_reference,
        write_metrics_csv,
        write_report_html,
        write_summary_json,
    )
    from medseg.io import load_cases
    from medseg.tracking import (
        check_case_ids,
        default_tracking_uri,
        log_evaluation,
        start_tracking,
    )

    kind = EvaluationKind(args.kind)
    inputs = [
        p for p in (args.pred, args.ref, args.manifest, args.labels, args.image) if p is not None
    ]
    args.out = check_output_path(args.out, folder=True, inputs=inputs, what="--out")
    if kind is EvaluationKind.INSTANCE and (args.labels or args.binary):
        raise ConfigError("--labels and --binary apply to --kind semantic only")
    manifest, root = load_cases(args.manifest) if args.manifest else (None, None)
    labels = None
    if args.labels:
        labels = parse_config(LabelsConfig, read_yaml(args.labels), source=args.labels).labels
    elif manifest is not None and manifest.labels and not args.binary:
        labels = dict(manifest.labels)
    pairs = find_case_pairs(
        args.pred,
        args.ref,
        manifest=manifest,
        manifest_root=root,
    )
    check_case_ids([pair.case_id for pair in pairs])
    if args.image is not None:
        pairs = _with_images(pairs, args.image)
    # what the predictions claim (their label sidecars) is what gets scored
    claimed = None
    if kind is EvaluationKind.SEMANTIC and not args.labels and not args.binary:
        claimed = find_claimed_labels(pairs)
    if claimed:  # a sidecar that claims nothing says nothing: score what is found
        # the reference's names (its sidecar, the manifest) place claims by name
        known = {**find_reference_names(pairs), **(labels or {})}
        labels, moves = match_claims_to_reference(claimed, known)
        if moves:
            pairs = [dataclasses.replace(pair, relabel=moves) for pair in pairs]
            print(
                "matched by name: "
                + ", ".join(f"{claimed[a]} {a} -> reference {b}" for a, b in moves)
            )
        unknown = [name for value, name in labels.items() if value not in known]
        if known and unknown:
            logger.warning("not among the reference's names: %s", ", ".join(unknown))
        print(
            f"scoring the {len(labels)} structure(s) the prediction claims: "
            + ", ".join(labels[v] for v in sorted(labels))
        )
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
            skip_absent_labels=args.labels is None and not claimed,
        )
    write_metrics_csv(result, outputs["metrics.csv"], overwrite=args.overwrite)
    write_summary_json(result, outputs["summary.json"], overwrite=args.overwrite)
    write_report_html(result, outputs["report.html"], overwrite=args.overwrite)
    print(format_summary_table(result))
    if kind is EvaluationKind.INSTANCE:
        print(format_instance_summary(result))
    print(f"{len(result.case_ids)} cases x {len(result.labels)} labels in {result.seconds:.1f} s")
    for name, path in outputs.items():
        print(f"{name + ':':<14}{path}")
    if args.no_tracking:
        return ExitCode.OK
    tracking_uri = (
        args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(args.out)
    )
    params: dict[str, object] = {"model": args.run_label}
    tags: dict[str, object] = {}
    if manifest is not None:
        params["dataset"] = manifest.name
        if args.manifest.is_file():
            params["dataset_manifest_sha256"] = compute_sha256(args.manifest)[:16]
        tags["reference_standard"] = manifest.reference_standard.value
    with start_tracking(
        tracking_uri=tracking_uri,
        experiment=args.experiment,
        run_name=f"evaluate-{args.run_label}",
        artifact_location=(args.out / "mlartifacts")
        if tracking_uri.startswith("sqlite:")
        else None,
    ) as tracker:
        log_evaluation(tracker, result, params=params, tags=tags, artifacts=list(outputs.values()))
        run_id = tracker.run_id
    print(f"MLflow run {run_id} at {tracking_uri}")
    return ExitCode.OK


def _cmd_report(args: argparse.Namespace) -> int:
    from medseg.core import InputError, OutputExistsError

    run_dir = args.run_dir
    if not (run_dir / "pipeline.yaml").is_file():
        raise InputError("not a medseg run folder (no pipeline.yaml)", path=run_dir)
    path = run_dir / "report.html"
    if path.exists() and not args.overwrite:
        raise OutputExistsError("report already exists; pass --overwrite to replace it", path=path)
    from medseg.runner import write_run_report

    print(f"report.html:  {write_run_report(run_dir, root=args.root, manifest_path=args.cases)}")
    return ExitCode.OK


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this group's subcommands to ``commands``."""
    report = commands.add_parser(
        "report",
        help="write the HTML report of a medseg run folder: metrics, QC flags, overlays",
        description="Score every finished case of a `medseg run` output folder against the "
        "references of its dataset manifest and write RUN_DIR/report.html: cases to review "
        "first (QC flags, with overlays of the flagged slices), distributions, per-label "
        "summaries and worst cases, the case's image under every contour.",
    )
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a `medseg run` --out folder")
    report.add_argument(
        "--cases", type=Path, help="the dataset manifest the run used, if not the pipeline's"
    )
    add_root(report, help="folder the manifest's paths start from (default: the checkout)")
    add_overwrite(report, help="replace an existing report.html")
    report.set_defaults(handler=_cmd_report)
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
    evaluate.add_argument(
        "-i",
        "--input",
        "--pred",
        dest="pred",
        type=Path,
        required=True,
        help="prediction file or folder (-i/--input and --pred are the same option)",
    )
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
        "--manifest",
        type=Path,
        help="cases with references: a manifest YAML, a folder (labels/) or a dataset.json",
    )
    evaluate.add_argument("--labels", type=Path, help="YAML 'labels: {id: name}' to evaluate")
    evaluate.add_argument(
        "--image",
        type=Path,
        help="image file or folder (<case id>.<suffix>) shown under the report's contours "
        "(default: the manifest's images)",
    )
    evaluate.add_argument(
        "--binary",
        action="store_true",
        help="binary masks: label 1 where value >= half the file's maximum (0/1, 0/255)",
    )
    add_out(evaluate, help="output folder")
    evaluate.add_argument(
        "--tolerance-mm", type=float, default=2.0, help="surface Dice tolerance (default 2 mm)"
    )
    evaluate.add_argument(
        "--hd-percentile", type=float, default=95.0, help="robust Hausdorff percentile (95)"
    )
    evaluate.add_argument(
        "--run-label",
        default="unknown",
        help="name of what made the predictions, logged as the MLflow param 'model' and in "
        "the run name",
    )
    # --model means a model to run everywhere else; here it was only a label
    add_deprecated_alias(evaluate, "--model", dest="run_label", replacement="--run-label")
    evaluate.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///OUT/mlflow.db)",
    )
    evaluate.add_argument("--experiment", default="medseg-evaluate", help="MLflow experiment")
    evaluate.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    add_overwrite(evaluate, help="replace existing outputs")
    evaluate.set_defaults(handler=_cmd_evaluate)
