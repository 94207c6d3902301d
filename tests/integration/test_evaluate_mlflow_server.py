"""`medseg evaluate` logs to a real `mlflow server` (127.0.0.1, SQLite backend in tmp)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from medseg.cli import main
from medseg.core import ExitCode

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real MLflow tracking server with a proxied artifact store, stopped afterwards."""
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    "mlflow server did not start:\n" + (tmp_path / "server.log").read_text()
                )
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log.close()


def test_evaluate_logs_to_mlflow_server_and_reads_back(
    repo_root: Path, tmp_path: Path, mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = repo_root / "data/retina_drive/test"
    (tmp_path / "ref").mkdir()
    (tmp_path / "pred").mkdir()
    for case in ("01", "02"):
        shutil.copy(root / f"1st_manual/{case}_manual1.gif", tmp_path / f"ref/drive_{case}.gif")
        shutil.copy(root / f"2nd_manual/{case}_manual2.gif", tmp_path / f"pred/drive_{case}.gif")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # the documented way to a server
    out = tmp_path / "eval"
    code = main(
        [
            "evaluate",
            "--pred",
            str(tmp_path / "pred"),
            "--ref",
            str(tmp_path / "ref"),
            "--binary",
            "--out",
            str(out),
            "--model",
            "second-observer",
            "--experiment",
            "drive-observers",
        ]
    )
    assert code == ExitCode.OK
    assert not (out / "mlflow.db").exists()  # went to the server, not the embedded store

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("drive-observers")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["model"] == "second-observer"
    assert run.data.params["n_cases"] == "2"
    assert run.data.tags["task"] == "evaluate"
    assert 0.7 < run.data.metrics["dice/label_1/mean"] < 0.85
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
        "metrics.csv",
        "summary.json",
        "report.html",
    }
    local = Path(client.download_artifacts(run.info.run_id, "summary.json", str(tmp_path)))
    assert local.read_bytes() == (out / "summary.json").read_bytes()
    assert any((tmp_path / "server-artifacts").rglob("report.html"))  # proxied to our folder
