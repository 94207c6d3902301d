"""``medseg export``: DICOM SEG, RTSTRUCT, Slicer files, overlays, review packages, PACS."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from medseg.cli._options import add_out, add_overwrite, add_root
from medseg.core import ExitCode, check_output_path

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
    if isinstance(data, dict) and isinstance(data.get("labels"), list):  # a label sidecar
        from medseg.io import label_names, read_label_sidecar

        entries = read_label_sidecar(path.with_name(path.name.replace(".labels.json", ".nii.gz")))
        data = (
            label_names(entries)
            if entries
            else {int(e["label"]): e["name"] for e in data["labels"] if isinstance(e, dict)}
        )
    if isinstance(data, dict) and isinstance(data.get("labels"), dict):
        data = data["labels"]
    try:
        return {int(k): str(v) for k, v in dict(data).items()}
    except (TypeError, ValueError) as err:
        raise ConfigError(
            "label names must map integer label values to names (e.g. '1: liver')", path=path
        ) from err


_EXPORT_OUT_SUFFIXES = {"seg": (".dcm",), "rtstruct": (".dcm",), "overlay": (".png",)}


def _export_inputs(args: argparse.Namespace, *, need_series: bool = True):  # type: ignore[no-untyped-def]
    """Check the output, then read the source, mask and structures an export needs."""
    import numpy as np

    from medseg.export import build_structures, load_structure_codes, read_source_series
    from medseg.io import read_image, read_label_sidecar

    suffixes = _EXPORT_OUT_SUFFIXES.get(args.export_command)
    inputs = [p for p in (args.source, args.mask, args.labels, args.codes) if p is not None]
    args.out = check_output_path(
        args.out,
        overwrite=args.overwrite,
        inputs=inputs,
        suffixes=suffixes,
        folder=suffixes is None,
        what="--out",
    )
    codes_path = args.codes or (args.root / "configs" / "export" / "structure_codes.yaml")
    code_map = load_structure_codes(codes_path if codes_path.is_file() else None)
    names = _load_label_names(args.labels)
    mask = read_image(args.mask)
    if mask.array.ndim == 4 and getattr(args, "type", "binary") == "fractional":
        values = list(range(1, mask.array.shape[3] + 1))
    else:
        values = [int(v) for v in np.unique(mask.array) if v != 0]
    # names and codes travel with the mask in its label sidecar; --labels overrides names
    sidecar = read_label_sidecar(args.mask)
    structures = build_structures(values, names=names, code_map=code_map, sidecar=sidecar)
    series = None
    if need_series:
        series = read_source_series(
            args.source, series_uid=args.series, complete_uids=args.complete_uids
        )
    return series, mask, structures


def _check_source_folder(series, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    """Refuse before any writing when the completed series' copy would overwrite files.

    The SEG/RTSTRUCT and ``source_dicom/`` are one result: failing on the folder after the
    object was written would leave half of it behind.
    """
    from medseg.core import OutputExistsError
    from medseg.export import source_series_paths

    if series is None or not series.completed or args.overwrite:
        return
    for path in source_series_paths(series, args.out.parent / "source_dicom"):
        if path.exists():
            raise OutputExistsError(
                "the completed source series would overwrite a file; pass --overwrite "
                "to replace it",
                path=path,
            )


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
    _check_source_folder(series, args)
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
    _check_source_folder(series, args)
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
    from medseg.export import describe_structures, write_volume_overlay
    from medseg.io import read_image

    _, mask, structures = _export_inputs(args, need_series=False)
    image = read_image(args.source, series_uid=args.series)
    title = f"{describe_structures([s.name for s in structures])}: {args.model_name}"
    path = write_volume_overlay(
        image, mask, structures, args.out, title=title, overwrite=args.overwrite
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


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
        add_overwrite(parser, help="replace existing outputs")
        add_root(parser, help="folder holding configs/")

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
    add_out(seg, help="output .dcm")
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
    add_out(rt, help="output .dcm")
    rt.set_defaults(handler=_cmd_export_rtstruct)

    slicer = add(
        "slicer",
        "write label NIfTI, Slicer .seg.nrrd and a colour table",
        "Slicer-ready files; with --source the mask is first put on that image's grid.",
        f"example:\n  medseg export slicer {msk} {lab} --out slicer/",
    )
    add_common(slicer, source_required=False)
    add_out(slicer, help="output folder")
    slicer.set_defaults(handler=_cmd_export_slicer)

    overlay = add(
        "overlay",
        "write a PNG montage (axial/coronal/sagittal) with contours and legend",
        "Contours of every label on the busiest slice of each plane, radiological view.",
        "example:\n  medseg export overlay --source data/ct_totalsegmentator/example_ct_dicom "
        f"\\\n      {msk} {lab} --out overlay.png",
    )
    add_common(overlay, source_required=True)
    add_out(overlay, help="output .png")
    overlay.set_defaults(handler=_cmd_export_overlay)

    review = add(
        "review",
        "write a review package (SEG, RTSTRUCT, NIfTI/NRRD, overlay, metrics, manifest)",
        "Everything for one case's review in one folder, validated with dciodvfy when "
        "installed, with a manifest.json holding the sha256 of every file.",
        f"example:\n  medseg export review {src} \\\n      {msk} {lab} --out review/",
    )
    add_common(review, source_required=True)
    add_out(review, help="output folder")
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
