"""Which failures Airflow retries: a missing delivery or a service that does not answer."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException
from mlflow.exceptions import MlflowException

from runway_mlops.errors import (
    ConfigError,
    ServiceUnavailableError,
    SourceUnavailableError,
    unreachable,
)
from runway_mlops.orchestration.tasks import _run_stage

REFUSED = (
    "API request to http://127.0.0.1:5050/api/2.0/mlflow/runs/log-batch failed with exception "
    "HTTPConnectionPool(host='127.0.0.1', port=5050): Max retries exceeded with url: "
    "/api/2.0/mlflow/runs/log-batch (Caused by NewConnectionError(... Connection refused))"
)


def _raise(exc: BaseException):
    def call():
        raise exc

    return call


def test_an_mlflow_server_that_does_not_answer_is_a_retried_service_error() -> None:
    with pytest.raises(ServiceUnavailableError) as raised:
        _run_stage(_raise(MlflowException(REFUSED)))
    message = str(raised.value)
    assert message.startswith("the MLflow tracking server does not answer (")
    assert "http://127.0.0.1:5050/api/2.0/mlflow/runs/log-batch" in message
    assert not isinstance(raised.value, AirflowFailException)


def test_mlflow_saying_no_is_not_an_outage() -> None:
    refused = MlflowException("RESOURCE_DOES_NOT_EXIST: Registered Model 'x' not found")
    assert unreachable(refused) is None
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        _run_stage(_raise(refused))
    assert unreachable(ValueError("Connection refused")) is None


def test_a_missing_delivery_is_retried_and_a_bad_config_is_not() -> None:
    with pytest.raises(SourceUnavailableError):
        _run_stage(_raise(SourceUnavailableError("no delivery of 'flights' for 2013-01-02")))
    with pytest.raises(AirflowFailException, match="config error: bad key"):
        _run_stage(_raise(ConfigError("bad key")))
