"""``medseg convert``, ``inspect``, ``manifest`` and ``config``: files and configs."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.cli._options import add_overwrite, add_path_alias
from medseg.cli._tables import print_table
from medseg.core import ExitCode, check_output_path, compute_sha256, parse_config, progress

_CONVERT_EPILOG = """\
examples:
  medseg convert data/ct_totalsegmentator/example_ct_dicom /tmp/ct.nii.gz
  medseg convert -i data/retina_drive/test/images/ -o /tmp/drive_nifti/  # one file each
  medseg convert study.zip /tmp/t1.nii.gz --series 1.2.840.113619.2.55.3
  medseg convert seg.nrrd /tmp/seg.nii.gz --overwrite
"""

_INSPECT_EPILOG = """\
examples:
  medseg inspect data/dicom_corpus/series_and_seg
  medseg inspect study.zip --json
"""


def _convert_jobs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """(source, destination) per input, checked before anything is read.

    One file, DICOM folder or zip writes DST; a folder of images or a pattern writes one
    ``<stem>.<ext>`` per image into the DST folder (NIfTI unless --format says).
    """
    from medseg.cli._inputs import (
        OutputFormat,
        check_2d_output,
        expand_inputs,
        plan_outputs,
    )

    inputs = expand_inputs([args.source])
    if inputs == [args.source]:
        destination = check_output_path(
            args.destination,
            overwrite=args.overwrite,
            inputs=[args.source],
            suffixes=(".nii.gz", ".nii", ".nrrd", ".mha", ".png", ".tif", ".tiff"),
            what="--out",
        )
        check_2d_output(args.source, destination)
        return [(args.source, destination)]
    fmt = OutputFormat(args.format)
    outputs = plan_outputs(
        inputs,
        args.destination,
        tag="",
        fmt=OutputFormat.NIFTI if fmt is OutputFormat.AUTO else fmt,
        overwrite=args.overwrite,
    )
    return list(zip(inputs, outputs, strict=True))


def _cmd_convert(args: argparse.Namespace) -> int:
    jobs = _convert_jobs(args)
    from medseg.io import axis_codes, convert_image

    for source, destination in progress(jobs, description="convert", unit="file"):
        volume = convert_image(
            source,
            destination,
            series_uid=args.series,
            overwrite=args.overwrite,
            allow_burned_in=args.allow_burned_in,
        )
        spacing = " x ".join(f"{s:.4g}" for s in volume.spacing_mm)
        print(
            f"wrote {destination}: shape {'x'.join(map(str, volume.array.shape))}, "
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
    if rows:
        print_table(header, rows)
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


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this group's subcommands to ``commands``."""
    convert = commands.add_parser(
        "convert",
        help="convert a DICOM series (folder/zip) or a volume to NIfTI/NRRD/MHA",
        description="Read SRC (DICOM folder, zip or file; NIfTI; NRRD; MHA; 2D image) and write "
        "DST (.nii.gz, .nii, .nrrd or .mha; .png/.tif for a 2D image) with the source "
        "geometry, atomically. DICOM is "
        "written in dcm2niix's voxel layout (rows flipped), so masks made on dcm2niix "
        "output overlay it exactly. Integer data and label maps stay integers.",
        epilog=_CONVERT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_path_alias(
        convert,
        dest="source",
        flags=("-i", "--input"),
        metavar="SRC",
        help="DICOM folder/zip/file, NIfTI, NRRD, MHA or 2D image; or a folder of images or a "
        "quoted glob pattern (one output each)",
    )
    add_path_alias(
        convert,
        dest="destination",
        flags=("-o", "--out"),
        metavar="DST",
        help="output file (.nii.gz, .nii, .nrrd, .mha; .png/.tif for a 2D image), or a folder "
        "for a folder of images or a pattern",
    )
    convert.add_argument(
        "--format",
        choices=["nifti", "png", "tif"],
        default="nifti",
        help="file type written into a DST folder (default: nifti)",
    )
    convert.add_argument(
        "--series", metavar="UID", help="series key or SeriesInstanceUID when SRC holds several"
    )
    add_overwrite(convert, help="replace DST if it exists")
    convert.add_argument(
        "--allow-burned-in",
        action="store_true",
        help="convert DICOM marked BurnedInAnnotation YES (refused by default: its pixels may "
        "show patient identity)",
    )
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
    add_path_alias(
        inspect,
        dest="source",
        flags=("-i", "--input"),
        metavar="SRC",
        help="DICOM folder, zip or file, or a volume / 2D image file",
    )
    inspect.add_argument("--json", action="store_true", help="print JSON instead of a table")
    inspect.set_defaults(handler=_cmd_inspect)


def add_manifest_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``medseg manifest verify|hash`` to ``commands``."""
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


def add_config_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``medseg config validate`` to ``commands``."""
    config = commands.add_parser("config", help="validate config files")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    validate = config_commands.add_parser(
        "validate",
        help="validate YAML configs against their schema",
        description="Validate YAML files; the kind is taken from --kind, else from the file "
        "name (pixel_rules.yaml → deid_pixel_rules) or folder (data_manifests/ → dataset, "
        "pipelines/ → pipeline, plans/ → plans, configs/export/ → export_codes, "
        "configs/deid/ → deid_profile, configs/sam/ → sam, configs/models/ → model, "
        "configs/training/ → training, configs/channel_training/ → channel_training, "
        "configs/inference/ → inference).",
        epilog="example:\n  medseg config validate pipelines/*.yaml configs/*/*.yaml plans/*.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    validate.add_argument(
        "--kind",
        help="config kind: dataset, pipeline, plans, export_codes, deid_profile, "
        "deid_pixel_rules, sam, model, training, channel_training, inference",
    )
    validate.set_defaults(handler=_cmd_config_validate)
