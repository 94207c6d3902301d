"""``medseg deid`` and ``medseg deid-check``: de-identification."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.cli._options import add_path_alias, add_root
from medseg.core import ExitCode, load_config, parse_config

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

    from medseg.core import ConfigError, DeidError, InputError
    from medseg.deid import (
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
        local_audit=args.local_audit,
    )
    print(f"profile {profile_name}: options {', '.join(o.value for o in config.options) or 'none'}")
    for status, count in sorted(summary.statuses.items()):
        print(f"{status:>16}: {count}")
    for rel, reason in summary.refused:
        print(f"refused: {rel} ({reason})")
    for given, status, reason in summary.failed:  # the user's own paths, on their console
        print(f"failed: {given} ({status}: {reason})")
    print(f"audit: {summary.audit_path}")
    if summary.link_table is not None:
        print(f"link table (re-identifies, keep it private): {summary.link_table}")
    if summary.local_audit is not None:
        print(f"local audit (names the inputs, keep it private): {summary.local_audit}")
    if summary.failed:
        given, status, reason = summary.failed[0]
        rest = len(summary.failed) - 1
        more = f" and {rest} more listed above" if rest else ""
        raise DeidError(
            f"{len(summary.failed)} input file(s) could not be de-identified: this one "
            f"({status}: {reason}){more}; the others were written",
            path=given,
        )
    if set(summary.statuses) == {"not_supported"}:
        raise InputError(
            f"none of the {summary.statuses['not_supported']} input file(s) is DICOM or "
            "NIfTI; nothing was de-identified",
            path=args.src,
        )
    return ExitCode.OK


def _cmd_deid_check(args: argparse.Namespace) -> int:
    import json

    from medseg.deid import check_for_leaks

    report = check_for_leaks(args.original, args.deidentified, min_length=args.min_length)
    print(json.dumps(report.to_json(), indent=2))
    return ExitCode.FAILURE if report.leaks else ExitCode.OK


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this group's subcommands to ``commands``."""
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
    add_path_alias(deid, dest="src", flags=("-i", "--input"), metavar="SRC", help="input folder")
    add_path_alias(
        deid, dest="dst", flags=("-o", "--out"), metavar="DST", help="output folder (outside SRC)"
    )
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
        "--local-audit",
        type=Path,
        metavar="FILE",
        help="write the input path, keyed hash and reason of each file that could not be "
        "de-identified here (JSON lines, mode 0600, never inside DST)",
    )
    add_root(deid, help="folder holding configs/deid/ (default: the checkout)")
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
