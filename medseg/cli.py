"""The ``medseg`` command line: parse arguments, load config, call the library."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from medseg.inference import SamSegmentConfig
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
  medseg run pipelines/ct_organs.yaml --out runs/ct --scheduler tcp://10.0.0.5:8786
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


_SAM_EPILOG = """\
coordinates are voxel indices along the image file's array axes (i, j, k): for DICOM
(column, row, slice); for 2D images x = column, y = row. The mask has the input's geometry.

examples:
  medseg sam data/ct_msd_spleen/sub-spleen2_ct.nii.gz --out spleen.nii.gz \\
      --intensity ct --box 40,60,5,95,120,20          # one 3D box: propagated through z
  medseg sam ct_dicom_dir --out liver.nii.gz --box 60,150,10,300,400,10
  medseg sam image.png --out mask.nii.gz --point 120,80,1 --point 140,60,0
  medseg sam data/ct_msd_spleen/sub-spleen2_ct.nii.gz --out spleen.nii.gz \
      --intensity ct --point 70,95,12,1 --propagate  # one click, propagated both ways
  medseg sam volume.nii.gz --out masks.nii.gz --prompts prompts.json --case case_01
  medseg sam cells.png --out cells.nii.gz --auto --config configs/sam/auto_cells.yaml
  medseg sam ct.nii.gz --out organs.nii.gz --intensity ct \\
      --text "liver, spleen" --text "left kidney" --text lungs  # located, no reference
"""


def _finite_or_none(value: float) -> float | None:
    """``value``, or None where it is NaN or infinite (JSON has no NaN)."""
    return value if math.isfinite(value) else None


def _parse_numbers(text: str, *, what: str, counts: tuple[int, ...]) -> list[float]:
    from medseg.core import ConfigError

    try:
        values = [float(v) for v in text.split(",")]
    except ValueError as err:
        raise ConfigError(f"{what} must be comma-separated numbers, not {text!r}") from err
    if len(values) not in counts:
        raise ConfigError(
            f"{what} must have {' or '.join(str(c) for c in counts)} values, "
            f"not {len(values)} ({text!r})"
        )
    return values


def _cmd_sam(args: argparse.Namespace) -> int:
    from medseg.core import ConfigError
    from medseg.inference import (
        PromptFile,
        SamSegmentConfig,
        load_prompt_file,
        resolve_object_prompts,
        segment_automatically,
        segment_with_prompts,
    )
    from medseg.io import read_image, write_nifti
    from medseg.models import load_sam_model

    config = (
        load_config(args.config, SamSegmentConfig)
        if args.config
        else parse_config(SamSegmentConfig, {})
    )
    data = config.model_dump(mode="json")
    for key in ("model", "checkpoint", "device", "precision"):
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
    if not str(args.out).endswith((".nii", ".nii.gz")):
        raise ConfigError(f"--out must end in .nii or .nii.gz, not {args.out.name!r}")
    given = [bool(args.box or args.point), args.prompts is not None, args.auto, bool(args.text)]
    if sum(given) != 1:
        raise ConfigError("give exactly one of: --box/--point, --prompts FILE, --auto, --text")
    if args.out.exists() and not args.overwrite:
        from medseg.core import OutputExistsError

        raise OutputExistsError(
            "output already exists; pass --overwrite to replace it", path=args.out
        )

    if args.text:
        return _sam_text(args, config)
    prompt_file = None
    if args.prompts is not None:
        prompt_file = load_prompt_file(args.prompts)
    elif not args.auto:
        spec: dict[str, object] = {"label": 1, "propagate": args.propagate}
        if args.box:
            spec["box"] = _parse_numbers(args.box, what="--box", counts=(4, 6))
        if args.point:
            spec["points"] = [_parse_numbers(p, what="--point", counts=(3, 4)) for p in args.point]
        for key in ("slice", "first_slice", "last_slice"):
            if getattr(args, key) is not None:
                spec[key] = getattr(args, key)
        prompt_file = parse_config(
            PromptFile,
            {"cases": [{"case_id": "cli", "objects": [spec]}]},
            source="command line",
        )

    volume = read_image(args.image)
    objects = (
        resolve_object_prompts(prompt_file, volume, case_id=args.case) if prompt_file else None
    )
    model = load_sam_model(config.model, checkpoint=config.checkpoint, device=config.device)
    if objects is None:
        labels = segment_automatically(model, volume, config)
    else:
        labels = segment_with_prompts(model, volume, objects, config)
    write_nifti(labels, args.out, overwrite=args.overwrite)
    n_labels = len({int(v) for v in labels.array[labels.array > 0].ravel()[:1_000_000]})
    print(
        f"{config.model}: {int((labels.array > 0).sum())} voxels in {n_labels} labels -> {args.out}"
    )
    return ExitCode.OK


def _sam_text(args: argparse.Namespace, config: SamSegmentConfig) -> int:
    """``medseg sam --text``: match the names, locate them, segment, write labels + sidecar."""
    import json

    from medseg.anatomy import Atlas, Vocabulary, infer_modality
    from medseg.core import ConfigError, StructureNameError, atomic_output
    from medseg.inference import IntensityMode, segment_named_structures
    from medseg.io import read_image, write_nifti
    from medseg.models import load_sam_model

    atlas_dir = args.atlas or _default_root() / "data" / "ct_totalsegmentator"
    volume = read_image(args.image)
    modality = infer_modality(volume.array, volume.metadata)
    if modality is None and config.intensity.mode is IntensityMode.CT:
        modality = "CT"
    if modality is None:
        raise StructureNameError(
            "cannot tell this image's modality (no DICOM Modality, not Hounsfield-like); "
            "for a CT pass --intensity ct",
            text=", ".join(args.text),
            candidates=(),
        )
    concepts = Vocabulary().match_all(args.text, modality=modality)
    if config.intensity.mode is IntensityMode.AUTO and modality == "CT":
        config = config.model_copy(
            update={"intensity": config.intensity.model_copy(update={"mode": IntensityMode.CT})}
        )
    names_file = atlas_dir / "labels_total.json"
    try:
        names = json.loads(names_file.read_text())["labels"]
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"atlas label names unreadable: {names_file}") from err
    atlas = Atlas(
        image=read_image(atlas_dir / "example_ct_sm.nii.gz"),
        labels=read_image(atlas_dir / "example_seg.nii.gz"),
        names={int(value): str(name) for value, name in names.items()},
    )
    model = load_sam_model(config.model, checkpoint=config.checkpoint, device=config.device)
    result = segment_named_structures(model, volume, concepts, atlas=atlas, config=config)
    sidecar = _sidecar_path(args.out)
    write_nifti(result.labels, args.out, overwrite=args.overwrite)
    with atomic_output(sidecar, overwrite=True) as tmp:
        tmp.write_text(json.dumps({"labels": result.structures}, indent=1) + "\n")
    for entry in result.structures:
        state = "" if entry["found"] else "  (not found in the field of view)"
        print(f"label {entry['label']}: {entry['name']}: {entry['voxels']} voxels{state}")
    print(f"-> {args.out} and {sidecar}")
    return ExitCode.OK


def _sidecar_path(out: Path) -> Path:
    """``labels.nii.gz`` → ``labels.json``."""
    name = out.name.removesuffix(".gz").removesuffix(".nii")
    return out.with_name(f"{name}.json")


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


_CONVERT_EPILOG = """\
examples:
  medseg convert data/ct_totalsegmentator/example_ct_dicom /tmp/ct.nii.gz
  medseg convert study.zip /tmp/t1.nii.gz --series 1.2.840.113619.2.55.3
  medseg convert seg.nrrd /tmp/seg.nii.gz --overwrite
"""

_INSPECT_EPILOG = """\
examples:
  medseg inspect data/dicom_corpus/series_and_seg
  medseg inspect study.zip --json
"""


def _cmd_convert(args: argparse.Namespace) -> int:
    from medseg.io import axis_codes, convert_image

    volume = convert_image(
        args.source, args.destination, series_uid=args.series, overwrite=args.overwrite
    )
    spacing = " x ".join(f"{s:.4g}" for s in volume.spacing_mm)
    print(
        f"wrote {args.destination}: shape {'x'.join(map(str, volume.array.shape))}, "
        f"{volume.array.dtype}, spacing {spacing} mm, axes {axis_codes(volume)}"
    )
    for message in volume.metadata.get("warnings", []) or []:
        print(f"  warning: {message}")
    return ExitCode.OK


def _cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from medseg.io import is_dicom_file, read_image, scan_dicom

    source: Path = args.source
    is_dicom = (
        source.is_dir()
        or source.suffix.lower() == ".zip"
        or (source.is_file() and is_dicom_file(source))
    )
    if not is_dicom:
        from medseg.io import axis_codes

        volume = read_image(source)
        facts = {
            "path": str(source),
            "format": volume.metadata.get("format"),
            "shape": list(volume.array.shape),
            "dtype": str(volume.array.dtype),
            "spacing_mm": [round(s, 6) for s in volume.spacing_mm],
            "orientation": axis_codes(volume),
            "affine_ras": [[round(v, 6) for v in row] for row in volume.affine.tolist()],
        }
        if args.json:
            print(json.dumps(facts, indent=2))
        else:
            for key, value in facts.items():
                print(f"{key:12} {value}")
        return ExitCode.OK
    scan = scan_dicom(source)
    if args.json:
        payload = {
            "n_files": scan.n_files,
            "series": [series.summary() for series in scan.series],
            "skipped": [{"file": name, "reason": reason} for name, reason in scan.skipped],
        }
        print(json.dumps(payload, indent=2))
        return ExitCode.OK
    header = ("series", "modality", "slices", "shape", "spacing mm", "axes", "description")
    rows = []
    for series in scan.series:
        rows.append(
            (
                series.key,
                series.modality or "?",
                str(series.n_slices),
                "x".join(map(str, series.shape)),
                " x ".join(f"{s:.4g}" for s in series.spacing_mm),
                series.orientation_codes,
                series.description,
            )
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows] if rows else []:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    for series in scan.series:
        for message in series.problems:
            print(f"problem {series.key}: {message}")
        for message in series.warnings:
            print(f"warning {series.key}: {message}")
        for message in series.notes:
            print(f"note    {series.key}: {message}")
    for name, reason in scan.skipped:
        print(f"skipped {name}: {reason}")
    print(f"{len(scan.series)} series in {scan.n_files} file(s), {len(scan.skipped)} skipped")
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


_EXPORT_EPILOG = """\
examples (the bundled real CT; its DICOM UIDs are blank, hence --complete-uids):
  medseg export review --source data/ct_totalsegmentator/example_ct_dicom \\
      --mask data/ct_totalsegmentator/example_seg_dicom.nii.gz \\
      --labels data_manifests/ct_totalsegmentator.yaml --complete-uids --out review/
  medseg export seg --source DICOM_DIR --mask mask.nii.gz --labels labels.yaml --out seg.dcm
  medseg export pacs --host 127.0.0.1 --port 4242 --aet MEDSEG review/*.dcm
"""


def _load_label_names(path: Path | None) -> dict[int, str]:
    """Label value → name from YAML/JSON: a plain mapping or a manifest's ``labels:``."""
    if path is None:
        return {}
    import json

    from medseg.core import ConfigError, read_yaml

    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read label names ({type(err).__name__})", path=path) from err
    else:
        data = read_yaml(path)
    if isinstance(data, dict) and isinstance(data.get("labels"), dict):
        data = data["labels"]
    try:
        return {int(k): str(v) for k, v in dict(data).items()}
    except (TypeError, ValueError) as err:
        raise ConfigError(
            "label names must map integer label values to names (e.g. '1: liver')", path=path
        ) from err


def _export_inputs(args: argparse.Namespace, *, need_series: bool = True):  # type: ignore[no-untyped-def]
    """Read the source, mask and structures an export subcommand needs."""
    import numpy as np

    from medseg.export import build_structures, load_structure_codes, read_source_series
    from medseg.io import read_image

    codes_path = args.codes or (args.root / "configs" / "export" / "structure_codes.yaml")
    code_map = load_structure_codes(codes_path if codes_path.is_file() else None)
    names = _load_label_names(args.labels)
    mask = read_image(args.mask)
    if mask.array.ndim == 4 and getattr(args, "type", "binary") == "fractional":
        values = list(range(1, mask.array.shape[3] + 1))
    else:
        values = [int(v) for v in np.unique(mask.array) if v != 0]
    structures = build_structures(values, names=names, code_map=code_map)
    series = None
    if need_series:
        series = read_source_series(
            args.source, series_uid=args.series, complete_uids=args.complete_uids
        )
    return series, mask, structures


def _print_completed(series, out: Path) -> None:  # type: ignore[no-untyped-def]
    if series is not None and series.completed:
        print(
            f"note: blank source UIDs were completed ({', '.join(series.completed)}); "
            f"the completed series is in {out} — send that copy to a PACS"
        )


def _cmd_export_seg(args: argparse.Namespace) -> int:
    import time

    from medseg.export import SegmentationType, write_dicom_seg, write_source_series

    series, mask, structures = _export_inputs(args)
    start = time.perf_counter()
    path = write_dicom_seg(
        mask,
        series,
        structures,
        args.out,
        segmentation_type=SegmentationType(args.type),
        model_name=args.model_name,
        overwrite=args.overwrite,
    )
    seconds = time.perf_counter() - start
    print(f"DICOM SEG ({args.type}, {len(structures)} segments) in {seconds:.2f} s: {path}")
    if series.completed:
        folder = args.out.parent / "source_dicom"
        write_source_series(series, folder, overwrite=args.overwrite)
        _print_completed(series, folder)
    return ExitCode.OK


def _cmd_export_rtstruct(args: argparse.Namespace) -> int:
    from medseg.export import write_rtstruct, write_source_series

    series, mask, structures = _export_inputs(args)
    path = write_rtstruct(
        mask, series, structures, args.out, model_name=args.model_name, overwrite=args.overwrite
    )
    print(f"RTSTRUCT ({len(structures)} ROIs): {path}")
    if series.completed:
        folder = args.out.parent / "source_dicom"
        write_source_series(series, folder, overwrite=args.overwrite)
        _print_completed(series, folder)
    return ExitCode.OK


def _cmd_export_slicer(args: argparse.Namespace) -> int:
    from medseg.export import write_color_table, write_label_nifti, write_seg_nrrd
    from medseg.io import read_image, reorient_like

    _, mask, structures = _export_inputs(args, need_series=False)
    if args.source is not None:
        mask = reorient_like(
            mask, read_image(args.source, series_uid=args.series), tolerance_mm=1e-2
        )
    out: Path = args.out
    for path in (
        write_label_nifti(mask, structures, out / "labels.nii.gz", overwrite=args.overwrite),
        write_seg_nrrd(mask, structures, out / "segmentation.seg.nrrd", overwrite=args.overwrite),
        write_color_table(structures, out / "labels.ctbl", overwrite=args.overwrite),
    ):
        print(f"wrote {path}")
    return ExitCode.OK


def _cmd_export_overlay(args: argparse.Namespace) -> int:
    from medseg.export import write_volume_overlay
    from medseg.io import read_image

    _, mask, structures = _export_inputs(args, need_series=False)
    image = read_image(args.source, series_uid=args.series)
    path = write_volume_overlay(
        image, mask, structures, args.out, title=args.model_name, overwrite=args.overwrite
    )
    print(f"overlay (PNG): {path}")
    return ExitCode.OK


def _cmd_export_review(args: argparse.Namespace) -> int:
    import json

    from medseg.core import InputError
    from medseg.export import SegmentationType, write_review_package
    from medseg.io import read_image

    series, mask, structures = _export_inputs(args)
    reference = read_image(args.reference) if args.reference else None
    metrics = None
    if args.metrics:
        try:
            metrics = json.loads(args.metrics.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise InputError("cannot read the metrics JSON", path=args.metrics) from err
    package = write_review_package(
        series,
        mask,
        structures,
        args.out,
        reference=reference,
        metrics=metrics,
        model_name=args.model_name,
        segmentation_type=SegmentationType(args.type),
        overwrite=args.overwrite,
    )
    print(f"review package: {package.folder} ({len(package.files) + 1} files, manifest.json)")
    if package.dciodvfy_errors:
        print(f"dciodvfy errors: {package.dciodvfy_errors}")
    else:
        print("dciodvfy: not installed, DICOM not validated")
    _print_completed(series, package.folder / "source_dicom")
    return ExitCode.OK


def _cmd_export_pacs(args: argparse.Namespace) -> int:
    from medseg.core import ExportError
    from medseg.export import (
        PacsNode,
        collect_dicom_files,
        send_dicom_files,
        send_dicomweb,
        verify_stored,
    )

    if args.log_level != "debug":  # pynetdicom logs every refused association as ERROR
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    files = collect_dicom_files(args.files)
    if args.dicomweb:
        sent = send_dicomweb(files, args.dicomweb)
        print(f"STOW-RS: {len(sent)} instance(s) stored at {args.dicomweb}")
        return ExitCode.OK
    node = PacsNode(
        host=args.host, port=args.port, called_aet=args.called_aet, calling_aet=args.aet
    )
    result = send_dicom_files(files, node)
    print(f"C-STORE: {len(result.stored)} stored, {len(result.failed)} refused")
    if result.failed:
        raise ExportError(f"{len(result.failed)} instance(s) refused by the PACS")
    if not args.no_verify:
        counts = verify_stored(node, result)
        found = sum(counts.values())
        print(f"verified by C-FIND: {found} of {len(result.stored)} in {len(counts)} series")
    return ExitCode.OK


def _add_export_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    export = commands.add_parser(
        "export",
        help="DICOM SEG, RTSTRUCT, Slicer files, overlays, review packages, PACS sending",
        description="Export label maps for review in viewers and PACS.",
        epilog=_EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = export.add_subparsers(dest="export_command", metavar="ACTION", required=True)

    def add(name: str, help_text: str, description: str, epilog: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(
            name,
            help=help_text,
            description=description,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        return parser

    def add_common(parser: argparse.ArgumentParser, *, source_required: bool) -> None:
        parser.add_argument(
            "--source",
            type=Path,
            required=source_required,
            help="source DICOM series folder" + ("" if source_required else " or image file"),
        )
        parser.add_argument("--mask", type=Path, required=True, help="label map (NIfTI, …)")
        parser.add_argument(
            "--labels",
            type=Path,
            help="label names: YAML/JSON '1: liver' mapping, or a dataset manifest (labels:)",
        )
        parser.add_argument(
            "--codes",
            type=Path,
            help="SNOMED CT code map (default: configs/export/structure_codes.yaml)",
        )
        parser.add_argument("--series", help="SeriesInstanceUID when the folder holds several")
        parser.add_argument(
            "--model-name", default="medseg", help="algorithm name recorded in the exports"
        )
        parser.add_argument(
            "--complete-uids",
            action="store_true",
            help="fill blank SOP/Study/Series UIDs of the source (writes the completed copy)",
        )
        parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
        parser.add_argument(
            "--root", type=Path, default=_default_root(), help="folder holding configs/"
        )

    src = "--source data/ct_totalsegmentator/example_ct_dicom --complete-uids"
    msk = "--mask data/ct_totalsegmentator/example_seg_dicom.nii.gz"
    lab = "--labels data_manifests/ct_totalsegmentator.yaml"
    seg = add(
        "seg",
        "write a DICOM SEG (highdicom) referencing the source series",
        "One segment per label with name, SNOMED CT codes, colour and algorithm "
        "identification; empty frames omitted. The mask must lie on the series' grid "
        "up to axis order/flips.",
        f"example:\n  medseg export seg {src} \\\n      {msk} {lab} --out seg.dcm",
    )
    add_common(seg, source_required=True)
    seg.add_argument("--out", type=Path, required=True, help="output .dcm")
    seg.add_argument(
        "--type",
        choices=["binary", "labelmap", "fractional"],
        default="binary",
        help="SEG encoding (fractional: 4D probability mask, one channel per label)",
    )
    seg.set_defaults(handler=_cmd_export_seg)

    rt = add(
        "rtstruct",
        "write an RTSTRUCT (one ROI per label, closed planar contours)",
        "Contours traced per slice at the voxel boundaries, in patient LPS mm.",
        f"example:\n  medseg export rtstruct {src} \\\n      {msk} {lab} --out rtstruct.dcm",
    )
    add_common(rt, source_required=True)
    rt.add_argument("--out", type=Path, required=True, help="output .dcm")
    rt.set_defaults(handler=_cmd_export_rtstruct)

    slicer = add(
        "slicer",
        "write label NIfTI, Slicer .seg.nrrd and a colour table",
        "Slicer-ready files; with --source the mask is first put on that image's grid.",
        f"example:\n  medseg export slicer {msk} {lab} --out slicer/",
    )
    add_common(slicer, source_required=False)
    slicer.add_argument("--out", type=Path, required=True, help="output folder")
    slicer.set_defaults(handler=_cmd_export_slicer)

    overlay = add(
        "overlay",
        "write a PNG montage (axial/coronal/sagittal) with contours and legend",
        "Contours of every label on the busiest slice of each plane, radiological view.",
        "example:\n  medseg export overlay --source data/ct_totalsegmentator/example_ct_dicom "
        f"\\\n      {msk} {lab} --out overlay.png",
    )
    add_common(overlay, source_required=True)
    overlay.add_argument("--out", type=Path, required=True, help="output .png")
    overlay.set_defaults(handler=_cmd_export_overlay)

    review = add(
        "review",
        "write a review package (SEG, RTSTRUCT, NIfTI/NRRD, overlay, metrics, manifest)",
        "Everything for one case's review in one folder, validated with dciodvfy when "
        "installed, with a manifest.json holding the sha256 of every file.",
        f"example:\n  medseg export review {src} \\\n      {msk} {lab} --out review/",
    )
    add_common(review, source_required=True)
    review.add_argument("--out", type=Path, required=True, help="output folder")
    review.add_argument("--reference", type=Path, help="reference label map: per-label Dice")
    review.add_argument("--metrics", type=Path, help="precomputed metrics JSON to include")
    review.add_argument(
        "--type", choices=["binary", "labelmap"], default="binary", help="SEG encoding"
    )
    review.set_defaults(handler=_cmd_export_review)

    pacs = add(
        "pacs",
        "send DICOM files with C-STORE and verify them with C-FIND (or STOW-RS)",
        "Sends files/folders to a DICOM node, then queries every sent series back by UID.",
        "examples:\n  medseg export pacs --host 127.0.0.1 --port 4242 --aet MEDSEG "
        "review/source_dicom review/segmentation_seg.dcm\n"
        "  medseg export pacs --dicomweb http://127.0.0.1:8042/dicom-web review/*.dcm",
    )
    pacs.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files or folders")
    pacs.add_argument("--host", default="127.0.0.1", help="PACS host (default 127.0.0.1)")
    pacs.add_argument("--port", type=int, default=104, help="PACS DICOM port (default 104)")
    pacs.add_argument("--aet", default="MEDSEG", help="our (calling) AE title")
    pacs.add_argument("--called-aet", default="ANY-SCP", help="the PACS's AE title")
    pacs.add_argument("--no-verify", action="store_true", help="skip the C-FIND check")
    pacs.add_argument("--dicomweb", metavar="URL", help="send with STOW-RS to this root instead")
    pacs.set_defaults(handler=_cmd_export_pacs)


_DEID_EPILOG = """\
examples:
  python -c "import secrets; print(secrets.token_hex(32))" > deid.key && chmod 600 deid.key
  medseg deid in/ out/ --key-file deid.key
  medseg deid in/ out/ --key-env MEDSEG_DEID_KEY --profile research --workers 2
  medseg deid in/ out/ --key-file deid.key --option retain_uids --link-table ~/link.csv
  medseg deid in/ out/ --key-file deid.key --clean-pixels configs/deid/pixel_rules.yaml
"""


def _load_deid_profile(name: str, root: Path) -> tuple[object, str]:
    from medseg.core import look_up_option
    from medseg.deid import DeidConfig

    path = Path(name)
    if not path.is_file():
        folder = root / "configs" / "deid"
        names = {p.stem for p in folder.glob("*.yaml") if p.stem != "pixel_rules"}
        path = folder / f"{look_up_option(name, names, what='deid profile')}.yaml"
    return load_config(path, DeidConfig), path.stem


def _cmd_deid(args: argparse.Namespace) -> int:
    import os

    from medseg.core import ConfigError, DeidError
    from medseg.deid import (
        FAILURE_STATUSES,
        DeidConfig,
        PixelRules,
        deidentify_tree,
        load_deid_key,
    )

    config, profile_name = _load_deid_profile(args.profile, args.root)
    if args.option:
        merged = {**config.model_dump(mode="json")}
        merged["options"] = sorted(set(merged["options"]) | set(args.option))
        config = parse_config(DeidConfig, merged, source=f"profile {profile_name} + --option")
    env_value = None
    if args.key_env:
        env_value = os.environ.get(args.key_env)
        if env_value is None:
            raise ConfigError(f"environment variable {args.key_env} is not set")
    key = load_deid_key(key_file=args.key_file, env_value=env_value)
    rules = load_config(args.clean_pixels, PixelRules) if args.clean_pixels else None
    summary = deidentify_tree(
        args.src,
        args.dst,
        config=config,
        key=key,
        pixel_rules=rules,
        workers=args.workers,
        link_table=args.link_table,
    )
    print(f"profile {profile_name}: options {', '.join(o.value for o in config.options) or 'none'}")
    for status, count in sorted(summary.statuses.items()):
        print(f"{status:>16}: {count}")
    for rel, reason in summary.refused:
        print(f"refused: {rel} ({reason})")
    print(f"audit: {summary.audit_path}")
    if summary.link_table is not None:
        print(f"link table (re-identifies, keep it private): {summary.link_table}")
    failures = sum(summary.statuses.get(status, 0) for status in FAILURE_STATUSES)
    if failures:
        raise DeidError(
            f"{failures} input file(s) could not be de-identified (unreadable, truncated or "
            "failed; each is listed with its reason in the audit); the others were written"
        )
    return ExitCode.OK


def _cmd_deid_check(args: argparse.Namespace) -> int:
    import json

    from medseg.deid import check_for_leaks

    report = check_for_leaks(args.original, args.deidentified, min_length=args.min_length)
    print(json.dumps(report.to_json(), indent=2))
    return ExitCode.FAILURE if report.leaks else ExitCode.OK


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

_INFER_EPILOG = """\
examples:
  medseg infer --model runs/drive data/retina_drive/test/images/01_test.tif --out pred/
  medseg infer --model runs/spleen image.nii.gz --out pred/ --tta --probabilities --precision bf16
  medseg infer --model nuclei data/cells_dsb2018/test/images/06350c7cc618be44.png --out pred/
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

    convert = commands.add_parser(
        "convert",
        help="convert a DICOM series (folder/zip) or a volume to NIfTI/NRRD/MHA",
        description="Read SRC (DICOM folder, zip or file; NIfTI; NRRD; MHA; 2D image) and write "
        "DST (.nii.gz, .nii, .nrrd or .mha) with the source geometry, atomically. DICOM is "
        "written in dcm2niix's voxel layout (rows flipped), so masks made on dcm2niix "
        "output overlay it exactly. Integer data and label maps stay integers.",
        epilog=_CONVERT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    convert.add_argument("source", type=Path, metavar="SRC")
    convert.add_argument("destination", type=Path, metavar="DST")
    convert.add_argument(
        "--series", metavar="UID", help="series key or SeriesInstanceUID when SRC holds several"
    )
    convert.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    convert.set_defaults(handler=_cmd_convert)

    inspect = commands.add_parser(
        "inspect",
        help="list DICOM series (or a volume's geometry) as a table or JSON",
        description="Read headers only and print each DICOM series found under SRC (folder, "
        "zip or file): key, modality, slices, shape, spacing, orientation, description, "
        "with validation warnings and skipped files. For NIfTI/NRRD/MHA/2D files, print the "
        "geometry.",
        epilog=_INSPECT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inspect.add_argument("source", type=Path, metavar="SRC")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of a table")
    inspect.set_defaults(handler=_cmd_inspect)
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
    sam.add_argument("image", type=Path, metavar="IMAGE", help="DICOM folder, NIfTI or 2D image")
    sam.add_argument("--out", type=Path, required=True, help="output label map (.nii.gz)")
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
        "--text",
        action="append",
        help="CT structure(s) to find and segment, e.g. 'liver, spleen, left kidney' "
        "(repeatable; label k = k-th name; a sidecar OUT.json lists names and SNOMED CT codes)",
    )
    sam.add_argument(
        "--atlas",
        type=Path,
        help="labelled atlas folder for --text (default: data/ct_totalsegmentator)",
    )
    sam.add_argument("--config", type=Path, help="SAM config YAML (e.g. configs/sam/*.yaml)")
    sam.add_argument("--model", help="litemedsam (default), sam_vit_b, sam_vit_l, sam_vit_h")
    sam.add_argument("--checkpoint", help="weights file (required for the SAM ViT models)")
    sam.add_argument("--device", help="auto (default: CUDA when present), cpu, cuda[:N]")
    sam.add_argument("--precision", choices=["fp32", "bf16"], help="encoder precision")
    sam.add_argument(
        "--intensity",
        choices=["auto", "ct", "percentile", "rgb"],
        help="intensity scaling (auto: CT window for DICOM CT, RGB passthrough, else percentiles)",
    )
    sam.add_argument("--window", help="CT window preset (abdomen, liver, lung, bone, brain …)")
    sam.add_argument("--level", type=float, help="CT window level in HU (with --width)")
    sam.add_argument("--width", type=float, help="CT window width in HU (with --level)")
    sam.add_argument("--overwrite", action="store_true", help="replace an existing output")
    sam.set_defaults(handler=_cmd_sam)

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

    from medseg.deid import DeidOption

    deid = commands.add_parser(
        "deid",
        help="de-identify DICOM/NIfTI (PS3.15 Annex E) into a new tree",
        description="De-identify every DICOM and NIfTI file under SRC into DST with the PS3.15 "
        "Annex E Basic Profile and the options of the profile: keyed 2.25 UIDs, keyed "
        "pseudonyms and date shifts, private tags removed unless safe, file meta rebuilt. "
        "Outputs are named by pseudonym and new UIDs only; DST/deid_audit.jsonl gets one "
        "JSON line per file (no PHI); a rerun skips files already done.",
        epilog=_DEID_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    deid.add_argument("src", type=Path, metavar="SRC", help="input folder")
    deid.add_argument("dst", type=Path, metavar="DST", help="output folder (outside SRC)")
    key_source = deid.add_mutually_exclusive_group(required=True)
    key_source.add_argument("--key-file", type=Path, help="file holding the project secret")
    key_source.add_argument(
        "--key-env", metavar="VAR", help="environment variable holding the project secret"
    )
    deid.add_argument(
        "--profile",
        default="basic",
        help="profile name in configs/deid/ or a YAML file (default: basic)",
    )
    deid.add_argument(
        "--option",
        action="append",
        choices=[o.value for o in DeidOption],
        help="switch an Annex E option on (repeatable), on top of the profile's",
    )
    deid.add_argument(
        "--clean-pixels",
        type=Path,
        metavar="RULES",
        help="YAML rules of regions to blank; files at risk of burned-in text that no rule "
        "matches are refused",
    )
    deid.add_argument("--workers", type=int, default=1, help="processes (default: 1)")
    deid.add_argument(
        "--link-table",
        type=Path,
        metavar="FILE",
        help="write original→pseudonym links here (mode 0600, never inside DST)",
    )
    deid.add_argument(
        "--root",
        type=Path,
        default=_default_root(),
        help="folder holding configs/deid/ (default: the checkout)",
    )
    deid.set_defaults(handler=_cmd_deid)

    deid_check = commands.add_parser(
        "deid-check",
        help="scan de-identified outputs for any identifying value of the originals",
        description="Collect every identifying value of the originals (names, IDs, dates, "
        "UIDs, free text, private text, file names) and search every element, file name and "
        "text file of the outputs for it, including as a substring. Prints a JSON summary "
        "(no PHI) and exits 1 on any leak.",
        epilog="example:\n  medseg deid-check in/ out/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    deid_check.add_argument("original", type=Path, metavar="ORIG")
    deid_check.add_argument("deidentified", type=Path, metavar="DEID")
    deid_check.add_argument(
        "--min-length",
        type=int,
        default=4,
        help="shortest value searched, in characters (default: 4)",
    )
    deid_check.set_defaults(handler=_cmd_deid_check)
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
    infer.add_argument("--out", type=Path, required=True, help="output folder")
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
    infer.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="autocast (auto: fp32 on CPU, bf16/fp16 on CUDA)",
    )
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
        description="Validate YAML files; the kind is taken from --kind, else from the file "
        "name (pixel_rules.yaml → deid_pixel_rules) or folder (data_manifests/ → dataset, "
        "pipelines/ → pipeline, plans/ → plans, configs/export/ → export_codes, "
        "configs/deid/ → deid_profile, configs/sam/ → sam, configs/models/ → model, "
        "configs/training/ → training, configs/inference/ → inference).",
        epilog="example:\n  medseg config validate pipelines/*.yaml configs/*/*.yaml plans/*.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    validate.add_argument(
        "--kind",
        help="config kind: dataset, pipeline, plans, export_codes, deid_profile, "
        "deid_pixel_rules, sam, model, training, inference",
    )
    validate.set_defaults(handler=_cmd_config_validate)

    _add_export_parsers(commands)
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
