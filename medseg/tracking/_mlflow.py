"""MLflow tracking with an embedded SQLite store by default and a PHI guard on strings."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from medseg.core import TrackingError

logger = logging.getLogger(__name__)

# Values that look like DICOM person names (``FAMILY^GIVEN``), dates (``YYYYMMDD``),
# or long digit runs (MRNs, accession numbers) are refused as params/tags.
_PHI_LIKE = (
    re.compile(r"\^"),
    re.compile(r"(?<!\d)(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?!\d)"),
    re.compile(r"(?<![\d.])\d{7,}(?![\d.])"),
)
# Lower-case hex tokens of 16+ characters with a letter are digests (git commits, sha256,
# DSB2018 image ids), not identifiers of a person: they are not searched for the patterns.
_HEX_DIGEST = re.compile(r"(?<![0-9A-Za-z])(?=[0-9a-f]*[a-f])[0-9a-f]{16,}(?![0-9A-Za-z])")


def default_tracking_uri(output_dir: str | Path) -> str:
    """Embedded MLflow store: ``sqlite:///<output_dir>/mlflow.db`` (absolute path)."""
    return f"sqlite:///{Path(output_dir).resolve() / 'mlflow.db'}"


def check_no_phi(values: Mapping[str, object], *, what: str) -> None:
    """Raise TrackingError if a key or value looks like PHI; the value is never echoed."""
    for key, value in values.items():
        for text in (str(key), str(value)):
            searched = _HEX_DIGEST.sub(" ", text)
            if any(pattern.search(searched) for pattern in _PHI_LIKE):
                raise TrackingError(
                    f"{what} {key!r} looks like it carries identifying data (person name, "
                    "date or long identifier); log a pseudonymous value instead"
                )


class Tracker:
    """One active MLflow run: params, metrics and artifacts, PHI-guarded."""

    def __init__(self, mlflow_module: object) -> None:
        self._mlflow = mlflow_module

    def log_params(self, params: Mapping[str, object]) -> None:
        """Log run parameters (refused if any looks like PHI)."""
        check_no_phi(params, what="param")
        self._mlflow.log_params({k: str(v) for k, v in params.items()})  # type: ignore[attr-defined]

    def set_tags(self, tags: Mapping[str, object]) -> None:
        """Set run tags (refused if any looks like PHI)."""
        check_no_phi(tags, what="tag")
        self._mlflow.set_tags({k: str(v) for k, v in tags.items()})  # type: ignore[attr-defined]

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        """Log numeric metrics in one batch call."""
        self._mlflow.log_metrics(dict(metrics), step=step)  # type: ignore[attr-defined]

    def log_artifact(self, path: str | Path, *, artifact_path: str | None = None) -> None:
        """Copy a file into the run's artifact store."""
        self._mlflow.log_artifact(str(path), artifact_path=artifact_path)  # type: ignore[attr-defined]

    @property
    def run_id(self) -> str:
        """Identifier of the active run."""
        return str(self._mlflow.active_run().info.run_id)  # type: ignore[attr-defined]

    @property
    def experiment_id(self) -> str:
        """Identifier of the active run's experiment."""
        return str(self._mlflow.active_run().info.experiment_id)  # type: ignore[attr-defined]


def format_run_view(tracking_uri: str, experiment_id: str, run_id: str) -> list[str]:
    """How to open one run in the MLflow UI: the ``mlflow ui`` command and the run's page.

    MLflow cannot open a browser on a run by itself; the UI serves it at a fixed address.
    """
    return [
        f"mlflow ui --backend-store-uri {tracking_uri}",
        f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}",
    ]


@contextlib.contextmanager
def start_tracking(
    *,
    tracking_uri: str,
    experiment: str,
    run_name: str | None = None,
    run_id: str | None = None,
    artifact_location: str | Path | None = None,
) -> Iterator[Tracker]:
    """Open an MLflow run on ``tracking_uri`` and yield a :class:`Tracker` for it.

    ``run_id`` reopens an existing run (a resumed batch keeps logging into its run).

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into the process
    environment; the previous value is restored when the run ends, so one run's store never
    leaks into the next run of the same process.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow  # imported lazily: it takes seconds

    # MLflow announces the creation and migration of a new SQLite store at INFO on its own
    # handler; a first run should not print a dependency's bookkeeping.
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logger.getEffectiveLevel()))

    previous_uri = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        try:
            mlflow.set_tracking_uri(tracking_uri)
            if mlflow.get_experiment_by_name(experiment) is None:
                location = Path(artifact_location).resolve().as_uri() if artifact_location else None
                mlflow.create_experiment(experiment, artifact_location=location)
            mlflow.set_experiment(experiment)
            run = mlflow.start_run(run_id=run_id) if run_id else mlflow.start_run(run_name=run_name)
        except Exception as err:
            raise TrackingError(f"cannot open MLflow run at the tracking store ({err})") from err
        with run:
            yield Tracker(mlflow)
    finally:
        if previous_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous_uri
