"""A coded vocabulary of structures, and matching of free text onto it.

Each :class:`Concept` carries the SNOMED CT codes that the SEG/RTSTRUCT exports write for it
(keywords of pydicom's ``codes.SCT``, the DICOM Part 16 tables, as in
``configs/export/structure_codes.yaml``), the modalities medseg can segment it on and the
segmenter that does it. Free text is normalised (case, punctuation, word order, ``L``/``R``
for left/right) and matched with rapidfuzz; text that matches nothing well, matches several
concepts equally, names the opposite side, or names a structure on a modality where medseg
cannot segment it is refused with :class:`~medseg.core.StructureNameError`, which lists the
closest names. Nothing is guessed silently: a fuzzy (non-exact) match is logged.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from medseg.core import StructureNameError

logger = logging.getLogger(__name__)

#: The segmenter (``segment.method``) of concepts located without a reference
#: (medseg.anatomy) and drawn by SAM.
CT_LOCATOR = "sam_text"

#: Modalities of 2D images (PNG, TIFF); a 2D image without a stated modality may be any.
MODALITIES_2D = ("microscopy", "fundus")


@dataclass(frozen=True)
class Concept:
    """One structure of the vocabulary.

    Attributes
    ----------
    key
        Canonical name, as in the atlas labels and the export code map (``kidney_left``).
    display
        Human-readable name (``left kidney``); also the sidecar's name.
    sct_type
        SNOMED CT structure keyword of ``pydicom.sr.codedict.codes.SCT`` (``Kidney``).
    sct_category
        SNOMED CT category keyword (``AnatomicalStructure``).
    laterality
        ``Left``, ``Right`` or None.
    synonyms
        Further names and abbreviations.
    modalities
        Modalities medseg segments it on (``CT``, ``MR``, ``microscopy``, ``fundus``).
    segmenter
        The registered segmenter (``segment.method``) that segments it: :data:`CT_LOCATOR`
        (located, drawn by SAM), ``channel_model``, ``nuclei_model``, ``trained_model``.
    model
        The shipped model that segmenter runs (``brain-tumour``, ``nuclei``), or None.
    parts
        Keys of the concepts a group concept is the union of (``kidneys``).
    """

    key: str
    display: str
    sct_type: str
    sct_category: str = "AnatomicalStructure"
    laterality: str | None = None
    synonyms: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ("CT",)
    segmenter: str = CT_LOCATOR
    model: str | None = None
    parts: tuple[str, ...] = ()

    @property
    def how(self) -> str:
        """How medseg segments it, for messages (``the nuclei_model segmenter (nuclei)``)."""
        if self.segmenter == CT_LOCATOR:
            return "located on CT only"
        model = f" ({self.model})" if self.model else ""
        return f"segmented on {'/'.join(self.modalities)} by the {self.segmenter} segmenter{model}"

    @property
    def type_code(self) -> Code:
        """SNOMED CT code of the structure."""
        return getattr(codes.SCT, self.sct_type)

    @property
    def category_code(self) -> Code:
        """SNOMED CT code of the category."""
        return getattr(codes.SCT, self.sct_category)

    @property
    def laterality_code(self) -> Code | None:
        """SNOMED CT laterality modifier, if any."""
        return getattr(codes.SCT, self.laterality) if self.laterality else None

    def to_json(self) -> dict[str, object]:
        """Name and codes for a label sidecar (JSON-serialisable)."""

        def code(value: Code | None) -> dict[str, str] | None:
            if value is None:
                return None
            return {
                "value": value.value,
                "scheme": value.scheme_designator,
                "meaning": value.meaning,
            }

        return {
            "name": self.display,
            "key": self.key,
            "category": code(self.category_code),
            "type": code(self.type_code),
            "laterality": code(self.laterality_code),
        }


def _paired(
    base: str, sct_type: str, synonyms: tuple[str, ...] = (), plural: str | None = None
) -> tuple[Concept, ...]:
    """Left, right and both-sides concepts of a paired organ (``kidney`` → 3 concepts)."""
    plural = plural or f"{base}s"
    sides = tuple(
        Concept(
            key=f"{base}_{side.lower()}",
            display=f"{side.lower()} {base}",
            sct_type=sct_type,
            laterality=side,
            synonyms=tuple(f"{side.lower()} {s}" for s in synonyms),
        )
        for side in ("Left", "Right")
    )
    both = Concept(
        key=plural,
        display=plural,
        sct_type=sct_type,
        synonyms=(f"both {plural}", f"bilateral {plural}", *(f"{s}s" for s in synonyms)),
        parts=(f"{base}_left", f"{base}_right"),
    )
    return (*sides, both)


#: The built-in vocabulary. CT organs are found by the locator; other concepts name the
#: segmenter that knows them.
VOCABULARY: tuple[Concept, ...] = (
    Concept("liver", "liver", "Liver", synonyms=("hepar", "hepatic parenchyma")),
    Concept("spleen", "spleen", "Spleen", synonyms=("splenic parenchyma", "lien")),
    *_paired("kidney", "Kidney", synonyms=("renal", "ren")),
    *_paired("lung", "Lung", synonyms=("pulmonary",)),
    Concept("stomach", "stomach", "Stomach", synonyms=("gaster",)),
    Concept("gallbladder", "gallbladder", "Gallbladder", synonyms=("gall bladder", "gb")),
    Concept("pancreas", "pancreas", "Pancreas"),
    Concept("aorta", "aorta", "Aorta", synonyms=("abdominal aorta",)),
    Concept("inferior_vena_cava", "inferior vena cava", "InferiorVenaCava", synonyms=("ivc",)),
    Concept(
        "brain_tumour",
        "brain tumour",
        "Tumor",
        sct_category="MorphologicallyAbnormalStructure",
        synonyms=("brain tumor", "glioma", "glioblastoma", "tumour", "tumor"),
        modalities=("MR",),
        segmenter="channel_model",
        model="brain-tumour",
    ),
    Concept(
        "nuclei",
        "nuclei",
        "Nucleus",
        sct_category="Tissue",
        synonyms=("nucleus", "cell nuclei", "nuclear"),
        modalities=("microscopy",),
        segmenter="nuclei_model",
        model="nuclei",
    ),
    Concept(
        "retinal_vessels",
        "retinal vessels",
        "BloodVessel",
        synonyms=("retina vessels", "retinal vasculature", "fundus vessels"),
        modalities=("fundus",),
        segmenter="trained_model",
        model="retina-vessels",
    ),
)

_SIDE_WORDS = {"l": "left", "lt": "left", "left": "left", "r": "right", "rt": "right"}
_SIDE_WORDS["right"] = "right"


def normalize_text(text: str) -> str:
    """Lower case, punctuation and ``_`` to spaces, ``L``/``Lt``/``R``/``Rt`` spelled out."""
    words = re.sub(r"[^0-9a-z]+", " ", text.lower()).split()
    return " ".join(_SIDE_WORDS.get(word, word) for word in words)


def _sorted_words(text: str) -> str:
    return " ".join(sorted(text.split()))


@dataclass(frozen=True)
class Vocabulary:
    """Concepts and the text matcher over their names.

    Parameters
    ----------
    concepts
        The concepts; keys and names must be unique.
    min_score
        Least rapidfuzz ``token_sort_ratio`` (0-100) of a fuzzy match.
    ambiguity_margin
        A fuzzy match is refused when another concept scores within this many points.
    """

    concepts: tuple[Concept, ...] = VOCABULARY
    min_score: float = 85.0
    ambiguity_margin: float = 3.0

    def __post_init__(self) -> None:
        owner: dict[str, str] = {}
        for concept in self.concepts:
            getattr(codes.SCT, concept.sct_type)  # AttributeError on an invented code
            getattr(codes.SCT, concept.sct_category)
            for name in self._names(concept):
                if owner.setdefault(name, concept.key) != concept.key:
                    raise ValueError(f"name {name!r} is used by {owner[name]} and {concept.key}")

    @staticmethod
    def _names(concept: Concept) -> set[str]:
        names = {concept.key, concept.display, *concept.synonyms}
        return {_sorted_words(normalize_text(n)) for n in names}

    def find_exact(self, name: str) -> Concept | None:
        """The concept whose key, display name or synonym is ``name`` (normalised: case,
        ``_``, word order, L/R), or None; never fuzzy."""
        wanted = _sorted_words(normalize_text(name))
        for concept in self.concepts:
            if wanted in self._names(concept):
                return concept
        return None

    def concept(self, key: str) -> Concept:
        """The concept with canonical name ``key``."""
        for concept in self.concepts:
            if concept.key == key:
                return concept
        raise KeyError(key)

    def _choices(self) -> dict[str, list[Concept]]:
        """Normalised name → concepts; a bare paired-organ name maps to all its sides."""
        choices: dict[str, list[Concept]] = {}
        for concept in self.concepts:
            for name in self._names(concept):
                choices.setdefault(name, []).append(concept)
            if concept.laterality:
                for name in self._names(concept):
                    words = [w for w in name.split() if w not in ("left", "right")]
                    bare = " ".join(words)
                    if bare and concept not in choices.setdefault(bare, []):
                        choices[bare].append(concept)
        for concept in self.concepts:
            for part in concept.parts:
                side = self.concept(part)
                for name in self._names(side):
                    bare = " ".join(w for w in name.split() if w not in ("left", "right"))
                    if concept not in choices.get(bare, []):
                        choices.setdefault(bare, []).append(concept)
        return choices

    def match(self, text: str, *, modality: str | tuple[str, ...] | None = None) -> Concept:
        """The concept ``text`` names.

        Parameters
        ----------
        text
            Free text (``"L kidney"``, ``"kidney, left"``, ``"liver"``).
        modality
            The image's modality (``CT``, ``MR``…), or the modalities it may be (a 2D
            image without a stated one: :data:`MODALITIES_2D`); when given, a concept medseg
            segments on none of them is refused.

        Raises
        ------
        StructureNameError
            Unknown text, several equally good concepts, the opposite side, or a modality
            the concept is not segmented on; the message lists the closest names.
        """
        from rapidfuzz import fuzz, process

        query = _sorted_words(normalize_text(text))
        if not query:
            raise StructureNameError("empty structure name", text=text, candidates=())
        choices = self._choices()
        sides = {w for w in query.split() if w in ("left", "right")}
        results = process.extract(query, list(choices), scorer=fuzz.token_sort_ratio, limit=None)
        scored: dict[str, float] = {}
        for name, score, _ in results:
            for concept in choices[name]:
                side = {concept.laterality.lower()} if concept.laterality else set()
                if sides and side and sides != side:
                    continue  # never "left" for "right"
                if sides and not side:
                    continue  # "left X" does not name both sides
                if scored.get(concept.key, -1.0) < score:
                    scored[concept.key] = float(score)
        ranking = sorted(scored.items(), key=lambda item: -item[1])
        closest = tuple(self.concept(key).display for key, _ in ranking[:4])
        if not ranking or ranking[0][1] < self.min_score:
            raise StructureNameError(
                f"{text!r} names no known structure; closest: {', '.join(closest)}",
                text=text,
                candidates=closest,
            )
        best_key, best_score = ranking[0]
        tied = [k for k, s in ranking if s >= best_score - self.ambiguity_margin]
        if len(tied) > 1:
            names = tuple(self.concept(k).display for k in tied)
            raise StructureNameError(
                f"{text!r} is ambiguous: it matches {', '.join(names)} equally; name one",
                text=text,
                candidates=names,
            )
        concept = self.concept(best_key)
        if best_score < 100:
            logger.info("%r read as %r (score %.0f)", text, concept.display, best_score)
        possible = (modality,) if isinstance(modality, str) else modality
        if possible is not None and not set(possible) & set(concept.modalities):
            image = possible[0] if len(possible) == 1 else f"2D ({' or '.join(possible)})"
            raise StructureNameError(
                f"{concept.display} is {concept.how}; this image is {image}",
                text=text,
                candidates=(concept.display,),
            )
        return concept

    def match_all(
        self, texts: list[str], *, modality: str | tuple[str, ...] | None = None
    ) -> list[Concept]:
        """Match each text (each may hold several names: :func:`split_names`)."""
        pieces = split_names(texts)
        if not pieces:
            raise StructureNameError("no structure named", text="", candidates=())
        matched = [self.match(piece, modality=modality) for piece in pieces]
        keys = [c.key for c in matched]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise StructureNameError(
                f"structure named twice: {', '.join(repeated)}",
                text=",".join(texts),
                candidates=tuple(repeated),
            )
        return matched


def split_names(texts: list[str]) -> list[str]:
    """The structure names in ``texts``, each of which may hold several separated by commas
    or ``;``. A comma also separates a name from its qualifier (``kidney, left``): a piece
    that is only a side word is joined to the piece before it."""
    pieces: list[str] = []
    for text in texts:
        for piece in re.split(r"[;,]", text):
            if not piece.strip():
                continue
            if normalize_text(piece) in ("left", "right") and pieces:
                pieces[-1] = f"{pieces[-1].strip()} {piece.strip()}"
            else:
                pieces.append(piece.strip())
    return pieces


def infer_modality(volume_array: object, metadata: dict[str, object]) -> str | None:
    """The image's modality: the DICOM ``modality`` in ``metadata``, else ``CT`` when the
    intensities look like Hounsfield units (air: the 0.1th percentile at or below -500,
    nothing below -3100, the 99th percentile above 0), else None.

    Parameters
    ----------
    volume_array
        Image array, axes (i, j, k); grey.
    metadata
        The image's metadata (``medseg.io.Volume.metadata``).
    """
    import numpy as np

    modality = metadata.get("modality")
    if isinstance(modality, str) and modality:
        return "CT" if modality.upper() == "CT" else modality.upper()
    array = np.asarray(volume_array)
    if array.ndim != 3 or array.size == 0:
        return None
    sample = array.ravel()[:: max(1, array.size // 2_000_000)].astype(np.float32)
    low, high = np.percentile(sample, [0.1, 99])
    if low <= -500 and float(sample.min()) >= -3100 and high > 0:
        return "CT"
    return None


def normalize_modality(name: str) -> str:
    """DICOM modality codes upper case (``ct`` → ``CT``, ``mr`` → ``MR``), others lower case
    (``Microscopy`` → ``microscopy``)."""
    name = name.strip()
    return name.upper() if len(name) <= 3 else name.lower()


def image_modalities(
    volume_array: object, metadata: dict[str, object], *, stated: str | None = None
) -> tuple[str, ...] | None:
    """The modalities an image may be: the ``stated`` one (a manifest's ``modality``, the
    ``--modality`` option), else :func:`infer_modality`, else :data:`MODALITIES_2D` for a
    2D image (``metadata["is_2d"]``), else None (unknown).
    """
    if stated and stated.lower() != "mixed":
        return (normalize_modality(stated),)
    inferred = infer_modality(volume_array, metadata)
    if inferred is not None:
        return (inferred,)
    if metadata.get("is_2d"):
        return MODALITIES_2D
    return None
