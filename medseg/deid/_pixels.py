"""Burned-in annotation: which files to refuse, and blanking configured regions."""

from __future__ import annotations

import re

import numpy as np
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from medseg.core import DeidError
from medseg.deid._config import PixelRule, PixelRules

RISKY_MODALITIES = frozenset({"US", "SC", "OT", "XC"})


class BurnedInRefusedError(DeidError):
    """The file may carry burned-in text and no pixel rule cleaned it.

    Attributes
    ----------
    reason
        ``burned_in_annotation_yes`` or ``modality_<MOD>_without_burned_in_no``, plus
        ``_no_matching_rule`` when ``--clean-pixels`` was given but no rule matched.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"refused: {reason}; pass --clean-pixels RULES with a rule for this device "
            "or clean the pixels elsewhere"
        )
        self.reason = reason


def find_burned_in_risk(ds: Dataset) -> str | None:
    """Return why ``ds`` may carry burned-in text, or None.

    BurnedInAnnotation = YES, or a modality that usually does (US, SC, OT, XC) without an
    explicit BurnedInAnnotation = NO.
    """
    burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if burned == "YES":
        return "burned_in_annotation_yes"
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality in RISKY_MODALITIES and burned != "NO":
        return f"modality_{modality}_without_burned_in_no"
    return None


def match_pixel_rule(ds: Dataset, rules: PixelRules) -> PixelRule | None:
    """Return the first rule whose every criterion matches ``ds``, or None."""
    manufacturer = str(ds.get("Manufacturer", "") or "")
    model = str(ds.get("ManufacturerModelName", "") or "")
    modality = str(ds.get("Modality", "") or "").strip().upper()
    rows, columns = ds.get("Rows"), ds.get("Columns")
    for rule in rules.rules:
        if rule.manufacturer is not None and not re.search(rule.manufacturer, manufacturer, re.I):
            continue
        if rule.model is not None and not re.search(rule.model, model, re.I):
            continue
        if rule.modality is not None and rule.modality.upper() != modality:
            continue
        if rule.rows is not None and rule.rows != rows:
            continue
        if rule.columns is not None and rule.columns != columns:
            continue
        return rule
    return None


def blank_regions(ds: Dataset, rule: PixelRule) -> int:
    """Set the rule's rectangles to 0 in every frame and sample; store uncompressed.

    The pixel data is decoded (pydicom + pylibjpeg/openjpeg for compressed syntaxes), the
    regions are zeroed and the result is written back as Explicit VR Little Endian (lossless;
    YBR colour is converted to RGB by the decoder). Overlay planes in the 60xx groups are
    blanked over the same rectangles.

    Returns
    -------
    int
        Number of pixels blanked per frame.

    Raises
    ------
    DeidError
        If the pixel data cannot be decoded.
    """
    try:
        array = ds.pixel_array
    except Exception as err:  # decoder plug-ins raise many kinds of errors
        raise DeidError(
            f"cannot decode the pixel data to clean it ({type(err).__name__}); "
            "install the matching pylibjpeg plug-in"
        ) from err
    array = np.array(array, copy=True)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    view = array.reshape((frames, ds.Rows, ds.Columns, samples))
    mask = np.zeros((ds.Rows, ds.Columns), dtype=bool)
    for region in rule.regions:
        mask[region.y : region.y + region.height, region.x : region.x + region.width] = True
    view[:, mask, :] = 0
    photometric = str(ds.PhotometricInterpretation)
    if samples == 3 and photometric.startswith("YBR"):
        photometric = "RGB"  # the decoder already converted to RGB
    ds.set_pixel_data(array, photometric_interpretation=photometric, bits_stored=ds.BitsStored)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    _blank_overlays(ds, mask)
    return int(mask.sum())


def _blank_overlays(ds: Dataset, mask: np.ndarray) -> None:
    for group in range(0x6000, 0x6020, 2):
        data_tag = (group << 16) | 0x3000
        if data_tag not in ds:
            continue
        try:
            rows = int(ds[(group << 16) | 0x0010].value)
            cols = int(ds[(group << 16) | 0x0011].value)
            origin = ds[(group << 16) | 0x0050].value
        except KeyError:
            del ds[data_tag]  # an overlay we cannot place is dropped rather than kept uncleaned
            continue
        raw = np.frombuffer(ds[data_tag].value, dtype=np.uint8)
        bits = np.unpackbits(raw, bitorder="little")[: rows * cols].reshape(rows, cols)
        r0, c0 = int(origin[0]) - 1, int(origin[1]) - 1
        for r in range(rows):
            for_rows = r + r0
            if 0 <= for_rows < mask.shape[0]:
                cols_img = np.arange(cols) + c0
                ok = (cols_img >= 0) & (cols_img < mask.shape[1])
                bits[r, ok] &= ~mask[for_rows, cols_img[ok]]
        packed = np.packbits(bits.ravel(), bitorder="little").tobytes()
        ds[data_tag].value = packed + (b"\x00" if len(packed) % 2 else b"")
