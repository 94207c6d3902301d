from __future__ import annotations

from pathlib import Path

from medseg.runner import CaseStateStore, CaseStatus


def test_case_lifecycle_and_persistence(tmp_path: Path) -> None:
    store = CaseStateStore(tmp_path / "state.sqlite")
    store.register(["b", "a", "c"])
    store.register(["a"])  # known cases keep their state
    store.mark_running("a")
    store.mark_done("a", {"metrics": {"dice": 0.9}})
    store.mark_running("b")
    store.mark_failed("b", error_type="InputError", message="cannot read 2D image")
    store.mark_running("c")  # then the process is killed
    store.set_meta("mlflow_run_id", "abc")
    store.close()

    reopened = CaseStateStore(tmp_path / "state.sqlite")
    counts = reopened.counts()
    assert counts[CaseStatus.DONE] == 1
    assert counts[CaseStatus.FAILED] == 1
    assert counts[CaseStatus.RUNNING] == 1
    assert reopened.get_meta("mlflow_run_id") == "abc"
    assert reopened.requeue_interrupted() == 1
    assert reopened.requeue_failed() == 1
    records = {r.case_id: r for r in reopened.records()}
    assert [r.case_id for r in reopened.records()] == ["a", "b", "c"]
    assert records["a"].status is CaseStatus.DONE
    assert records["a"].result == {"metrics": {"dice": 0.9}}
    assert records["b"].status is CaseStatus.PENDING
    assert records["b"].attempts == 1
    assert [r.case_id for r in reopened.records(CaseStatus.PENDING)] == ["b", "c"]
    reopened.set_meta("mlflow_run_id", "def")
    assert reopened.get_meta("mlflow_run_id") == "def"
    reopened.close()
