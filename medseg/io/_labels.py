"""Label sidecars: the names (and codes) of a label map travel with it in a JSON file.

Beside ``liver.nii.gz`` medseg writes ``liver.labels.json``::

    {"format": "medseg-labels/1",
     "labels": [{"label": 5, "name": "liver", "key": "liver",
                 "category": {"value": "123037004", "scheme": "SCT",
                              "meaning": "Anatomical Structure"},
                 "type": {"value": "10200004", "scheme": "SCT", "meaning": "Liver"},
                 "laterality": null}]}

One entry per structure the mask claims (label value > 0); ``label`` and ``name`` are
required, the SNOMED CT ``category``/``type``/``laterality`` codes (value, scheme,
meaning) are null when unknown, and writers may add fields (``medseg sam --text`` adds the
located boxes). ``evaluate`` scores the structures a prediction's sidecar lists, ``export``
names and codes segments from it. The name ``<stem>.labels.json`` keeps clear of the
``<stem>.json`` metadata sidecar that dcm2niix (BIDS) writes beside an image; a
``<stem>.json`` that holds a ``labels`` list of this shape is read too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from medseg.core import InputError, atomic_output
from medseg.io._convert import to_output_layout
from medseg.io._read import write_image
from medseg.io._volume import Volume

#: ``format`` value of the sidecars this version writes.
LABEL_SIDECAR_FORMAT = "medseg-labels/1"
_MASK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".png", ".tif", ".tiff")
_CODE_FIELDS = ("category", "type", "laterality")


def _stem(mask_path: Path) -> str:
    name = mask_path.name
    for suffix in _MASK_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return mask_path.stem


def label_sidecar_path(mask_path: str | Path) -> Path:
    """``mask.nii.gz`` → ``mask.labels.json`` (same folder)."""
    mask_path = Path(mask_path)
    return mask_path.with_name(f"{_stem(mask_path)}.labels.json")


def _check_entry(entry: object, *, path: Path) -> dict[str, object]:
    if not isinstance(entry, Mapping):
        raise InputError("label sidecar entries must be objects with 'label' and 'name'", path=path)
    value, name = entry.get("label"), entry.get("name")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"label sidecar 'label' must be an integer > 0, not {value!r}", path=path)
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"label sidecar entry {value} needs a non-empty 'name'", path=path)
    for field in _CODE_FIELDS:
        code = entry.get(field)
        if code is not None and not (
            isinstance(code, Mapping)
            and all(isinstance(code.get(k), str) for k in ("value", "scheme"))
        ):
            raise InputError(
                f"label sidecar entry {value}: {field!r} must be null or "
                "{'value', 'scheme', 'meaning'}",
                path=path,
            )
    return dict(entry)


def write_label_sidecar(
    mask_path: str | Path, entries: Sequence[Mapping[str, object]], *, overwrite: bool = False
) -> Path:
    """Write the sidecar of ``mask_path`` atomically; returns its path.

    Parameters
    ----------
    mask_path
        The label map the sidecar describes.
    entries
        One mapping per structure: ``label`` (int > 0), ``name`` (str), optional codes
        (see the module docstring) and any further JSON-serialisable fields.
    """
    path = label_sidecar_path(mask_path)
    checked = [_check_entry(entry, path=path) for entry in entries]
    values = [entry["label"] for entry in checked]
    if len(set(values)) != len(values):
        raise InputError("label sidecar lists a label value twice", path=path)
    document = {"format": LABEL_SIDECAR_FORMAT, "labels": sorted(checked, key=lambda e: e["label"])}  # type: ignore[arg-type,return-value]
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return path


def _parse(path: Path, *, strict: bool) -> dict[int, dict[str, object]] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        if not strict:
            return None
        raise InputError(
            f"cannot read the label sidecar ({type(err).__name__})", path=path
        ) from err
    entries = document.get("labels") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        if not strict:
            return None
        raise InputError("label sidecar must hold a 'labels' list", path=path)
    if not strict and not all(
        isinstance(e, Mapping) and "label" in e and "name" in e for e in entries
    ):
        return None  # another tool's <stem>.json (e.g. dcm2niix's BIDS metadata)
    parsed = [_check_entry(entry, path=path) for entry in entries]
    return {int(entry["label"]): entry for entry in parsed}  # type: ignore[call-overload]


def read_label_sidecar(mask_path: str | Path) -> dict[int, dict[str, object]] | None:
    """The sidecar entries of ``mask_path`` by label value, or None when it has none.

    Looks for ``<stem>.labels.json``, then a ``<stem>.json`` holding a ``labels`` list of
    ``{label, name, ...}`` entries (other JSON files there are ignored).

    Raises
    ------
    InputError
        If ``<stem>.labels.json`` exists but is not a valid sidecar (naming the file).
    """
    mask_path = Path(mask_path)
    path = label_sidecar_path(mask_path)
    if path.is_file():
        return _parse(path, strict=True)
    legacy = mask_path.with_name(f"{_stem(mask_path)}.json")
    if legacy.is_file():
        return _parse(legacy, strict=False)
    return None


def label_names(entries: Mapping[int, Mapping[str, object]]) -> dict[int, str]:
    """Label value → name of sidecar entries."""
    return {value: str(entry["name"]) for value, entry in entries.items()}


def write_label_map(
    labels: Volume,
    path: str | Path,
    *,
    entries: Sequence[Mapping[str, object]] | None = None,
    source: Volume | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a label map the way every medseg command does, with its sidecar.

    The map goes in medseg's output array order (:func:`to_output_layout`: dcm2niix's for
    anything on a DICOM series' grid, ``source`` being the image it was made on); the
    sidecar (:func:`write_label_sidecar`) is written when ``entries`` is given. Both
    atomically; the output type follows the suffix (:func:`write_image`).
    """
    path = Path(path)
    if entries is not None:
        sidecar = label_sidecar_path(path)
        if sidecar.exists() and not overwrite:
            from medseg.core import OutputExistsError

            raise OutputExistsError(
                "output already exists; pass --overwrite to replace it", path=sidecar
            )
    written = write_image(to_output_layout(labels, source=source), path, overwrite=overwrite)
    if entries is not None:
        write_label_sidecar(path, entries, overwrite=overwrite)
    return written
