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

    from medseg.core import ConfigError
    from medseg.deid import DeidConfig, PixelRules, deidentify_tree, load_deid_key

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
    return ExitCode.OK


def _cmd_deid_check(args: argparse.Namespace) -> int:
    import json

    from medseg.deid import check_for_leaks

    report = check_for_leaks(args.original, args.deidentified, min_length=args.min_length)
    print(json.dumps(report.to_json(), indent=2))
    return ExitCode.FAILURE if report.leaks else ExitCode.OK


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
