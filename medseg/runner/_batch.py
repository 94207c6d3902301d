"""Batch runs of a pipeline over a dataset's cases, on Dask, resumable, losing no case.

The coordinating process owns the SQLite state file and the MLflow run; workers (a local
Dask cluster by default, or an existing scheduler by address) run one case each and write
only into a temporary case folder, renamed into ``<out>/cases/<case_id>`` when the case
succeeds. A killed run therefore leaves no partial case folder in place, and ``resume``
re-runs exactly the cases that were not done.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from medseg import __version__
from medseg.core import (
    ConfigError,
    MedsegError,
    OutputExistsError,
    OutputPathError,
    atomic_output,
    check_case_id,
    check_output_path,
    child_path,
    compute_sha256,
    dump_config,
    progress,
)
from medseg.io import Case, DatasetManifest, load_cases, resolve_case_paths
from medseg.runner._pipeline import PipelineConfig, StageName
from medseg.runner._provenance import (
    describe_run,
    log_model_record,
    log_run_artifacts,
    write_case_metrics_table,
)
from medseg.runner._report import REPORT_NAME, write_run_report
from medseg.runner._stages import CaseContext, run_stages
from medseg.runner._state import CaseStateStore, CaseStatus
from medseg.tracking import default_tracking_uri, start_tracking

logger = logging.getLogger(__name__)

STATE_FILE = "state.sqlite"
CASES_DIR = "cases"
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class CaseOutcome:
    """What a worker reports back for one case."""

    case_id: str
    ok: bool
    metrics: dict[str, float]
    outputs: list[str]
    seconds: float
    error_type: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class BatchSummary:
    """Result of a batch run."""

    done: int
    failed: int
    pending: int
    failures: list[tuple[str, str, str]]
    mean_metrics: dict[str, float]
    out_dir: Path
    tracking_uri: str | None
    run_id: str | None
    experiment_id: str | None = None


def select_cases(
    manifest: DatasetManifest, config: PipelineConfig, *, own_dataset: bool = True
) -> list[Case]:
    """The manifest's cases picked by the pipeline's split/ids/limit.

    ``own_dataset`` False (cases given with ``--cases``): the pipeline's ``split`` and
    ``ids`` name its own dataset's cases and are not applied; ``limit`` is.
    """
    cases = list(manifest.cases)
    selection = config.cases
    if not own_dataset:
        selection = selection.model_copy(update={"split": None, "ids": None})
    if selection.split is not None:
        cases = [case for case in cases if case.split is selection.split]
    if selection.ids is not None:
        known = {case.id for case in cases}
        missing = [case_id for case_id in selection.ids if case_id not in known]
        if missing:
            raise ConfigError(
                f"cases not in the dataset (after the split filter): {', '.join(missing)}"
            )
        cases = [case for case in cases if case.id in set(selection.ids)]
    if selection.limit is not None:
        cases = cases[: selection.limit]
    if not cases:
        raise ConfigError("the case selection is empty")
    return cases


def run_case(
    config: PipelineConfig, case: Case, *, labels: dict[int, str], root: Path, out_dir: Path
) -> CaseOutcome:
    """Run every stage on one case; errors come back as a failed outcome, never raised.

    Outputs go to a temporary folder renamed to ``<out_dir>/cases/<case id>`` on success.
    """
    started = time.perf_counter()
    cases_dir = out_dir / CASES_DIR
    final_dir = child_path(cases_dir, case.id)  # never '..': that would be out_dir itself
    tmp_dir = cases_dir / f"{_TMP_PREFIX}{case.id}-{uuid.uuid4().hex[:8]}"
    tmp_dir.mkdir(parents=True)
    context = CaseContext(case=case, labels=labels, root=root, out_dir=tmp_dir)
    try:
        run_stages(context, config)
        if final_dir.exists():  # left by an earlier attempt whose state was not recorded
            shutil.rmtree(final_dir)
        tmp_dir.rename(final_dir)
    except BaseException as err:  # a case's failure is reported, never raised across workers
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if not isinstance(err, Exception):  # Ctrl-C, SystemExit: stop, leaving no temporary
            raise
        if isinstance(err, MedsegError):  # the path is the user's own: name it
            message = err.message if err.path is None else f"{err.path}: {err.message}"
        else:  # a bug or a library failure: report its type, not its text (may hold PHI)
            logger.debug("case %s failed", case.id, exc_info=True)
            message = "unexpected error; rerun with --log-level debug"
        return CaseOutcome(
            case_id=case.id,
            ok=False,
            metrics={},
            outputs=[],
            seconds=time.perf_counter() - started,
            error_type=type(err).__name__,
            error_message=message,
        )
    return CaseOutcome(
        case_id=case.id,
        ok=True,
        metrics=context.metrics,
        outputs=context.outputs,
        seconds=time.perf_counter() - started,
    )


def _remove_stale_temporaries(out_dir: Path) -> int:
    cases_dir = out_dir / CASES_DIR
    stale = list(cases_dir.glob(f"{_TMP_PREFIX}*")) if cases_dir.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


#: Seconds a local worker process gets to exit before it is killed. Dask's default (5 s, of
#: which 4 s to exit) is shorter than a worker that imported torch takes to tear down on a
#: busy 2-core machine, which left "Worker process still alive after 4.0 seconds, killing".
WORKER_CLOSE_TIMEOUT_S = 30.0


@contextlib.contextmanager
def _dask_client(workers: int, scheduler: str | None) -> Iterator[object]:
    from distributed import Client, LocalCluster, Nanny

    class PatientNanny(Nanny):
        async def close(self, timeout: float = WORKER_CLOSE_TIMEOUT_S, reason: str = "nanny-close"):  # type: ignore[override]
            return await super().close(timeout=timeout, reason=reason)

    # distributed sets its own loggers to INFO on import; keep them to warnings and up.
    logging.getLogger("distributed").setLevel(
        max(logging.WARNING, logging.getLogger().getEffectiveLevel())
    )
    if scheduler is not None:
        with Client(scheduler, timeout="30s") as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            worker_class=PatientNanny,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _outcomes(
    config: PipelineConfig,
    cases: list[Case],
    *,
    labels: dict[int, str],
    root: Path,
    out_dir: Path,
    workers: int,
    scheduler: str | None,
) -> Iterator[CaseOutcome]:
    if workers == 0 and scheduler is None:
        for case in cases:
            yield run_case(config, case, labels=labels, root=root, out_dir=out_dir)
        return
    from distributed import as_completed

    with _dask_client(workers, scheduler) as client:
        futures = [
            client.submit(
                run_case,
                config,
                case,
                labels=labels,
                root=root,
                out_dir=out_dir,  # type: ignore[attr-defined]
                key=f"medseg-case-{case.id}-{uuid.uuid4().hex[:8]}",
                pure=False,
            )
            for case in cases
        ]
        for future in as_completed(futures):
            yield future.result()


def run_pipeline(
    config: PipelineConfig,
    *,
    root: Path,
    out_dir: Path,
    manifest_path: Path | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> BatchSummary:
    """Run ``config`` over its cases; see the module docstring for the guarantees.

    Parameters
    ----------
    root
        Folder that the pipeline's relative paths (its ``dataset``, checkpoints, prompt
        files) start from. Case paths start from the manifest's root
        (:func:`medseg.io.load_cases`).
    out_dir
        Output folder: ``state.sqlite``, ``cases/<id>/``, ``summary.json``, ``mlflow.db``.
    manifest_path
        Cases overriding the pipeline's ``dataset``: a manifest YAML, a folder of images
        (``labels/`` optional) or an nnU-Net ``dataset.json``; the pipeline's case
        ``split``/``ids`` are then not applied.
    workers
        Local Dask worker processes; 0 runs the cases in this process.
    scheduler
        Address of an existing Dask scheduler (then ``workers`` is ignored).
    resume
        Continue a run in ``out_dir``: done cases are skipped, failed and interrupted
        ones are retried.
    overwrite
        Start afresh in an ``out_dir`` that holds an earlier run.
    """
    own_dataset = manifest_path is None
    manifest_path = manifest_path or root / config.dataset
    # one rule for case paths: relative to the manifest's root (a folder or dataset.json:
    # the folder), never to the working directory or the checkout
    manifest, data_root = load_cases(manifest_path)
    selected = select_cases(manifest, config, own_dataset=own_dataset)
    cases = [resolve_case_paths(case, data_root) for case in selected]
    for case in cases:
        check_case_id(case.id)
    out_dir = check_output_path(out_dir, folder=True, inputs=[manifest_path], what="--out")
    state_path = out_dir / STATE_FILE
    if out_dir.is_dir() and any(out_dir.iterdir()) and not state_path.exists():
        raise OutputPathError(
            "output folder is not empty and holds no medseg run; choose a new or empty folder",
            path=out_dir,
        )
    if state_path.exists() and not resume:
        if not overwrite:
            raise OutputExistsError(
                "output folder holds an earlier run; pass --resume to "
                "continue it or --overwrite to start afresh",
                path=out_dir,
            )
        shutil.rmtree(out_dir / CASES_DIR, ignore_errors=True)
        for name in (STATE_FILE, f"{STATE_FILE}-wal", f"{STATE_FILE}-shm"):
            (out_dir / name).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    removed = _remove_stale_temporaries(out_dir)
    if removed:
        logger.info("removed %d partial case folder(s) of an interrupted run", removed)
    store = CaseStateStore(state_path)
    try:
        store.register(case.id for case in cases)
        if resume:
            interrupted = store.requeue_interrupted()
            retried = store.requeue_failed()
            logger.info(
                "resuming: %d interrupted and %d failed case(s) queued again", interrupted, retried
            )
        pending_ids = {record.case_id for record in store.records(CaseStatus.PENDING)}
        todo = [case for case in cases if case.id in pending_ids]
        with atomic_output(out_dir / "pipeline.yaml", overwrite=True) as tmp:
            tmp.write_text(dump_config(config), encoding="utf-8")

        tracking_uri = config.tracking.tracking_uri or default_tracking_uri(out_dir)
        experiment = config.tracking.experiment or f"medseg-{config.name}"
        with start_tracking(
            tracking_uri=tracking_uri,
            experiment=experiment,
            run_name=f"{config.name}",
            run_id=store.get_meta("mlflow_run_id"),
            artifact_location=out_dir / "mlartifacts",
        ) as tracker:
            if store.get_meta("mlflow_run_id") is None:
                store.set_meta("mlflow_run_id", tracker.run_id)
                tracker.log_params(
                    {
                        "pipeline": config.name,
                        "dataset": manifest.name,
                        "dataset_manifest_sha256": compute_sha256(manifest_path)[:16]
                        if manifest_path.is_file()
                        else "none (a folder)",
                        "segment_method": config.segment.method.value,
                        "n_cases": len(cases),
                        "medseg_version": __version__,
                        **describe_run(config, root=root),
                    }
                )
                log_model_record(tracker, config, root=root, out_dir=out_dir)
            for case in todo:
                store.mark_running(case.id)
            step = len(store.records(CaseStatus.DONE))
            for outcome in progress(
                _outcomes(
                    config,
                    todo,
                    labels=manifest.labels,
                    root=root,
                    out_dir=out_dir,
                    workers=workers,
                    scheduler=scheduler,
                ),
                description=config.name,
                total=len(todo),
                unit="case",
            ):
                if outcome.ok:
                    store.mark_done(
                        outcome.case_id,
                        {
                            "metrics": outcome.metrics,
                            "outputs": outcome.outputs,
                            "seconds": round(outcome.seconds, 3),
                        },
                    )
                    tracker.log_metrics(outcome.metrics, step=step)
                    step += 1
                else:
                    store.mark_failed(
                        outcome.case_id,
                        error_type=outcome.error_type or "",
                        message=outcome.error_message or "",
                    )
                    logger.warning(
                        "case %s failed: %s: %s",
                        outcome.case_id,
                        outcome.error_type,
                        outcome.error_message,
                    )
            summary = _summarise(
                store, out_dir, tracking_uri, tracker.run_id, tracker.experiment_id
            )
            if StageName.EVALUATE in config.stages and summary.done:
                _write_report(out_dir, root=root, manifest_path=manifest_path)
                if (out_dir / REPORT_NAME).is_file():
                    tracker.log_artifact(out_dir / REPORT_NAME)
            tracker.log_metrics(
                {f"mean_{k}": v for k, v in summary.mean_metrics.items()}
                | {"cases_done": float(summary.done), "cases_failed": float(summary.failed)}
            )
            done = [r for r in store.records(CaseStatus.DONE)]
            write_case_metrics_table(
                ((r.case_id, (r.result or {}).get("metrics", {})) for r in done),
                out_dir / "case_metrics.csv",
            )
            log_run_artifacts(tracker, out_dir, [r.case_id for r in done])
        return summary
    finally:
        store.close()
        # an interrupted run (Ctrl-C) leaves no partial case folder: its workers are gone
        if _remove_stale_temporaries(out_dir):
            logger.info("removed the partial case folder(s) of the interrupted cases")


def _write_report(out_dir: Path, *, root: Path, manifest_path: Path) -> None:
    """The run's report.html; a failure is logged (the cases' results stand without it)."""
    try:
        write_run_report(out_dir, root=root, manifest_path=manifest_path)
    except MedsegError as err:
        logger.warning("report.html not written: %s", err.message)


def _summarise(
    store: CaseStateStore,
    out_dir: Path,
    tracking_uri: str,
    run_id: str,
    experiment_id: str | None = None,
) -> BatchSummary:
    import json

    records = store.records()
    done = [r for r in records if r.status is CaseStatus.DONE]
    failed = [r for r in records if r.status is CaseStatus.FAILED]
    pending = [r for r in records if r.status in (CaseStatus.PENDING, CaseStatus.RUNNING)]
    values: dict[str, list[float]] = {}
    for record in done:
        metrics = (record.result or {}).get("metrics", {})
        for name, value in metrics.items():  # type: ignore[union-attr]
            if value == value:  # skip NaN (undefined, e.g. both masks empty)
                values.setdefault(name, []).append(float(value))
    means = {name: statistics.fmean(v) for name, v in sorted(values.items())}
    summary = BatchSummary(
        done=len(done),
        failed=len(failed),
        pending=len(pending),
        failures=[(r.case_id, r.error_type or "", r.error_message or "") for r in failed],
        mean_metrics=means,
        out_dir=out_dir,
        tracking_uri=tracking_uri,
        run_id=run_id,
        experiment_id=experiment_id,
    )
    payload = {
        "done": summary.done,
        "failed": summary.failed,
        "pending": summary.pending,
        "mean_metrics": means,
        "failures": [{"case": c, "error": t, "message": m} for c, t, m in summary.failures],
        "cases": {
            r.case_id: {
                "status": r.status.value,
                "attempts": r.attempts,
                **({"metrics": r.result.get("metrics")} if r.result else {}),
            }
            for r in records
        },
    }
    with atomic_output(out_dir / "summary.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return summary
