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
