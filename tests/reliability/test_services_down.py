"""A service the platform depends on goes away in the middle of the work, then comes back.

* **S3 down during ingest**: the landing bucket is reached through a loopback TCP relay
  to moto's S3 server; the relay is cut (connections refused, open ones dropped) before
  the ingest task runs. The task must fail with an error naming the endpoint, of the
  kind Airflow retries (not ``AirflowFailException``), and publish nothing; once the
  relay is back, the retry must ingest exactly the delivered rows.
* **MLflow server stopped during training**: a real ``mlflow server`` (SQLite backend,
  proxied artifacts) is SIGKILLed, with its workers, as soon as the candidate's MLflow
  run exists. The task must fail within seconds (not MLflow's four minutes of retries)
  with an error naming the server, of the retried kind; after a restart on the same
  store the retried task trains, the gates pass, and registering the model twice (a
  retried ``register_challenger``) leaves exactly one model version.

How the protections were checked: with ``storage.S3Store._call`` letting boto's
``EndpointConnectionError`` through, the first test fails (no ``SourceUnavailableError``);
without ``errors.unreachable`` in ``_run_stage`` the second fails (a bare
``MlflowException`` is raised); without the run-id lookup in ``registry.register`` the
second registration creates version 2.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pandas as pd
import pytest

from runway_mlops import catalog
from runway_mlops.config import load_settings
from runway_mlops.errors import ServiceUnavailableError, SourceUnavailableError
from runway_mlops.lake import Lake
from runway_mlops.orchestration.tasks import _run_stage
from runway_mlops.programs.services import mlflow_server_command
from runway_mlops.sample.seed import seed
from runway_mlops.stages import train
from runway_mlops.stages.ingest import ingest
from runway_mlops.training import registry
from runway_mlops.training.model import candidates
from tests.conftest import CONFIG_DIR
from tests.integration.conftest import free_port
from tests.synthetic import write_days

DAY = dt.date(2013, 7, 4)
END = dt.date(2013, 4, 29)


class TcpRelay:
    """A loopback TCP relay to ``target_port`` that can be cut and restored.

    Cut: the listening socket closes (new connections are refused) and every open
    connection is shut down, as when an endpoint's host goes away.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._close(source, sink)

    def _close(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with self._lock:
                self._open.discard(sock)

    def down(self) -> None:
        assert self._listener is not None
        self._close(self._listener)
        with self._lock:
            open_now = list(self._open)
        self._close(*open_now)


def test_s3_down_during_ingest_fails_clearly_and_the_retry_ingests_every_row(
    tmp_path,
    flights_pipeline,
    s3_endpoint,
    s3_bucket,
) -> None:
    relay = TcpRelay(int(s3_endpoint.rsplit(":", 1)[1]))
    relay.up()
    landing = f"s3://{s3_bucket}/landing"
    settings = load_settings(
        CONFIG_DIR,
        env={
            "RUNWAY_HOME": str(tmp_path / "home"),
            "RUNWAY_LANDING_URI": landing,
            "RUNWAY_S3_ENDPOINT_URL": relay.url,
        },
    )
    pipeline = flights_pipeline
    seed(settings, pipeline, "files", DAY, DAY)
    lake = Lake(settings.lake_dir)

    relay.down()
    with pytest.raises(SourceUnavailableError, match=rf"cannot reach {relay.url}") as failed:
        _run_stage(lambda: ingest(settings, pipeline, DAY, run_id="try-1"))
    # Every dataset's landing folder is named, and the retry policy that handles it is real.
    for dataset in pipeline.datasets:
        assert f"S3 list of {landing}/{dataset}" in str(failed.value), dataset
    assert pipeline.retries >= 1
    # Nothing was published or recorded.
    for dataset in pipeline.datasets:
        assert lake.partitions("raw", pipeline.name, dataset) == []
    assert catalog.list_partitions(settings.database_url, pipeline.name) == []

    relay.up()
    result = _run_stage(lambda: ingest(settings, pipeline, DAY, run_id="try-2"))
    client = boto3.client("s3", endpoint_url=s3_endpoint)  # straight to the server
    for dataset in pipeline.datasets:
        keys = [
            o["Key"]
            for o in client.list_objects_v2(Bucket=s3_bucket, Prefix=f"landing/{dataset}/")[
                "Contents"
            ]
        ]
        delivered = sum(
            len(pd.read_csv(io.BytesIO(client.get_object(Bucket=s3_bucket, Key=k)["Body"].read())))
            for k in keys
            if f"ds={DAY}" in k or pipeline.datasets[dataset].kind != "events"
        )
        assert result.rows[dataset] == delivered > 0
        assert len(lake.read_frame("raw", pipeline.name, dataset, DAY)) == delivered


# ---------------------------------------------------------------------------- MLflow


@contextlib.contextmanager
def mlflow_server(settings, log: Path) -> Iterator[subprocess.Popen]:
    """``mlflow server`` as the prod profile starts it, in its own process group."""
    port = int(settings.mlflow_tracking_uri.rsplit(":", 1)[1])
    with log.open("ab") as out:
        proc = subprocess.Popen(
            mlflow_server_command(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield proc
    finally:
        kill_group(proc)


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def runs_of(tracking_uri: str, experiment: str) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return [r.info.run_id for r in client.search_runs([found.experiment_id])]


def test_mlflow_stopped_during_training_fails_fast_and_the_retry_registers_once(
    tmp_path, flights_pipeline
) -> None:
    port = free_port()
    home = tmp_path / "home"
    settings = load_settings(
        CONFIG_DIR,
        env={
            "RUNWAY_HOME": str(home),
            "RUNWAY_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}",
            "RUNWAY_MLFLOW_ARTIFACT_URI": "mlflow-artifacts:/",
            "RUNWAY_MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path}/mlflow-server.db",
            "RUNWAY_MLFLOW_ARTIFACTS_DESTINATION": str(tmp_path / "mlflow-server-artifacts"),
        },
    )
    pipeline = flights_pipeline
    write_days(settings, pipeline, END - dt.timedelta(days=59), END, rows=300)
    window = train.training_window(pipeline, end=END, days=60)
    training_set = train.prepare_training_set(settings, pipeline, window)
    candidate = candidates(pipeline.training, None, tune=False)[0]
    context = train.RunContext(dag_id="flights_training", run_id="manual__mlflow_down")
    log = tmp_path / "mlflow-server.log"
    experiment = registry.experiment_name(pipeline)

    with mlflow_server(settings, log) as server:
        registry.connect(settings, pipeline)  # the experiment exists before the fault
        killed = threading.Event()

        def kill_when_the_run_exists() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if runs_of(settings.mlflow_tracking_uri, experiment):
                    kill_group(server)
                    killed.set()
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_when_the_run_exists, daemon=True)
        killer.start()
        started = time.monotonic()
        with pytest.raises(ServiceUnavailableError, match=rf"127\.0\.0\.1:{port}") as failed:
            _run_stage(
                lambda: train.train_candidate(
                    settings, pipeline, training_set.path, candidate, context
                )
            )
        failed_after = time.monotonic() - started
        killer.join(timeout=10)
    assert killed.is_set(), "the server was never stopped: the run was not created"
    assert "does not answer" in str(failed.value)
    # MLflow's own default (7 retries, backoff factor 2) would take about four minutes.
    assert failed_after < 120, f"the task took {failed_after:.0f} s to notice"

    with mlflow_server(settings, log):
        result = _run_stage(
            lambda: train.train_candidate(settings, pipeline, training_set.path, candidate, context)
        )
        evaluation = train.evaluate_gates(settings, pipeline, train.select_best([result]), context)
        assert evaluation["decision"] == "passed"
        first = train.register_challenger(settings, pipeline, evaluation, context)
        # The task is retried after a failure that came after the registration.
        again = train.register_challenger(settings, pipeline, evaluation, context)
        client, _ = registry.connect(settings, pipeline)
        versions = client.search_model_versions(f"name = '{pipeline.model_name}'")
        assert first["model_version"] == again["model_version"] == "1"
        assert [str(v.version) for v in versions] == ["1"]
        assert versions[0].run_id == result["mlflow_run_id"]
        assert registry.aliased_version(client, pipeline.model_name, "challenger") == "1"
        # The killed attempt's run is left behind, but nothing was registered from it.
        assert len(runs_of(settings.mlflow_tracking_uri, experiment)) == 2
