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


_SAM_EPILOG = """\
coordinates are voxel indices along the image file's array axes (i, j, k): for DICOM
(column, row, slice); for 2D images x = column, y = row. The mask has the input's geometry.

examples:
  medseg sam data/ct_msd_spleen/sub-spleen2_ct.nii.gz --out spleen.nii.gz \\
      --intensity ct --box 40,60,5,95,120,20          # one 3D box: propagated through z
  medseg sam ct_dicom_dir --out liver.nii.gz --box 60,150,10,300,400,10
  medseg sam image.png --out mask.nii.gz --point 120,80,1 --point 140,60,0
  medseg sam volume.nii.gz --out masks.nii.gz --prompts prompts.json --case case_01
  medseg sam cells.png --out cells.nii.gz --auto --config configs/sam/auto_cells.yaml
"""


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
    given = [bool(args.box or args.point), args.prompts is not None, args.auto]
    if sum(given) != 1:
        raise ConfigError("give exactly one of: --box/--point, --prompts FILE, --auto")
    if args.out.exists() and not args.overwrite:
        from medseg.core import OutputExistsError

        raise OutputExistsError(
            "output already exists; pass --overwrite to replace it", path=args.out
        )

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
        help="x,y,label or x,y,z,label (label 1 foreground, 0 background); repeatable",
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
