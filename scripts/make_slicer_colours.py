"""Extract 3D Slicer's recommended display colours into ``medseg/export/slicer_colours.json``.

Usage (a checkout of https://github.com/Slicer/Slicer at hand)::

    TERMS=SLICER/Modules/Loadable/Terminologies/Resources
    python scripts/make_slicer_colours.py \
        $TERMS/SegmentationCategoryTypeModifier-SlicerGeneralAnatomy.json \
        --commit <Slicer commit> --out medseg/export/slicer_colours.json

Keys are SNOMED CT code values ``category/type`` or ``category/type/modifier``; a modifier
without its own colour takes its type's. The first occurrence of a key wins.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("terminology", type=Path, help="Slicer .json terminology file")
    parser.add_argument("--commit", required=True, help="Slicer commit the file comes from")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    data = json.loads(args.terminology.read_text())
    colours: dict[str, list[int]] = {}
    for category in data["SegmentationCodes"]["Category"]:
        for kind in category.get("Type", []):
            key = f"{category['CodeValue']}/{kind['CodeValue']}"
            rgb = kind.get("recommendedDisplayRGBValue")
            if rgb:
                colours.setdefault(key, [int(c) for c in rgb])
            for modifier in kind.get("Modifier", []):
                own = modifier.get("recommendedDisplayRGBValue") or rgb
                if own:
                    colours.setdefault(f"{key}/{modifier['CodeValue']}", [int(c) for c in own])
    document = {
        "source": (
            "3D Slicer, Modules/Loadable/Terminologies/Resources/"
            f"{args.terminology.name} at commit {args.commit} (https://github.com/Slicer/Slicer)"
        ),
        "licence": "3D Slicer License (BSD style), https://www.slicer.org",
        "key": "SNOMED CT code values: category/type or category/type/modifier",
        "colours": dict(sorted(colours.items())),
    }
    lines = [
        f"  {json.dumps(key)}: {json.dumps(rgb)}" for key, rgb in document.pop("colours").items()
    ]
    head = json.dumps(document, indent=2)[:-2]
    args.out.write_text(head + ',\n  "colours": {\n  ' + ",\n  ".join(lines) + "\n  }\n}\n")


if __name__ == "__main__":
    main()
