"""Models trained by this project and shipped inside the package, addressed by name.

Each shipped model is a folder ``medseg/models/shipped/<name>/`` holding ``checkpoint.pt``
(a medseg checkpoint: weights, plans, labels, training config) and ``MODEL.yaml`` (its card:
task, training config, data manifest hash, measured metrics and the command that reproduces
them). ``--model NAME`` resolves through :func:`resolve_model_path`; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medseg.core import ModelError, read_yaml

SHIPPED_MODELS_DIR = Path(__file__).resolve().parent / "shipped"
SHIPPED_CHECKPOINT = "checkpoint.pt"
SHIPPED_CARD = "MODEL.yaml"
RUN_BEST_CHECKPOINT = "checkpoint_best.pt"
RUN_LAST_CHECKPOINT = "checkpoint_last.pt"


def list_shipped_models() -> list[str]:
    """Names of the models shipped with the package (folders with a checkpoint)."""
    if not SHIPPED_MODELS_DIR.is_dir():
        return []
    return sorted(
        entry.name
        for entry in SHIPPED_MODELS_DIR.iterdir()
        if entry.is_dir() and (entry / SHIPPED_CHECKPOINT).is_file()
    )


def shipped_model_card(name: str) -> dict[str, Any]:
    """The ``MODEL.yaml`` card of a shipped model (empty if the model has none)."""
    card = SHIPPED_MODELS_DIR / name / SHIPPED_CARD
    return dict(read_yaml(card)) if card.is_file() else {}


def resolve_model_path(reference: str | Path) -> Path:
    """A checkpoint file from a path, a training run folder or a shipped model's name.

    A run folder resolves to its best checkpoint, else its last. A bare name that is not an
    existing path is looked up among the shipped models.

    Raises
    ------
    ModelError
        If the reference is neither an existing checkpoint/run folder nor a shipped name.
    """
    path = Path(reference)
    if path.is_file():
        return path
    if path.is_dir():
        best = path / RUN_BEST_CHECKPOINT
        if best.is_file():
            return best
        last = path / RUN_LAST_CHECKPOINT
        if last.is_file():
            return last
        raise ModelError(
            f"folder has neither {RUN_BEST_CHECKPOINT} nor {RUN_LAST_CHECKPOINT}", path=path
        )
    name = str(reference)
    if name in list_shipped_models():
        return SHIPPED_MODELS_DIR / name / SHIPPED_CHECKPOINT
    shipped = ", ".join(list_shipped_models()) or "none"
    raise ModelError(
        f"no checkpoint file, run folder or shipped model named {name!r} "
        f"(shipped models: {shipped})"
    )
