"""Every error type Runway raises on purpose, and which of them a retry may fix.

One type per kind of failure, each with a message a person can act on; ``kind`` is the
short name the CLI and Airflow's task log show before the message. :data:`RETRYABLE` and
:func:`unreachable` are the retry classifier the task adapters and the CLI share.
"""

from __future__ import annotations

from typing import Any

# ---------------------------------------------------------------------------- the base


class RunwayError(Exception):
    """Base class: every failure Runway reports on purpose derives from it."""

    #: Short name shown by the CLI before the message.
    kind = "error"


# --------------------------------------------------------------- configuration


class ConfigError(RunwayError):
    """A settings or pipeline file is missing, malformed or has a bad value."""

    kind = "config error"


class PipelineConfigErrors(Exception):
    """The pipeline files that did not become DAGs, each with its reason."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = dict(problems)
        lines = "\n\n".join(message for message in problems.values())
        super().__init__(
            f"{len(problems)} pipeline file(s) did not load; their DAGs are not in Airflow "
            f"until fixed (every other pipeline's DAGs are):\n\n{lines}"
        )


# ----------------------------------------------------------------- data and sources


class SourceUnavailableError(RunwayError):
    """The source system has no data for the interval, or cannot be reached."""

    kind = "source unavailable"


class SourceDataError(RunwayError):
    """The source delivered data that cannot be read (corrupt or truncated file)."""

    kind = "source data error"


class CorruptDeliveryError(SourceDataError):
    """A delivered file cannot be parsed; carries the files for quarantine."""

    def __init__(self, message: str, files: dict[str, bytes]) -> None:
        super().__init__(message)
        self.files = files


class NaiveTimeError(ValueError):
    """Timestamps without an offset that name no single instant in the time zone."""


class DataValidationError(RunwayError):
    """Validation found blocking problems; the partition is in quarantine."""

    kind = "validation failed"

    def __init__(self, message: str, *, failures: list[Any] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


class MissingPartitionError(RunwayError):
    """A stage needs a partition that does not exist (not ingested, or quarantined)."""

    kind = "missing partition"


class StaleDataError(RunwayError):
    """A stage was asked to use a partition made from data that has since changed."""

    kind = "stale data"


class BusyError(RunwayError):
    """Another task holds the day this one must write (ingest, validation or features).

    Retried by Airflow like an unavailable service: the other task finishes soon.
    """

    kind = "busy"


# ---------------------------------------------------------------- stages and models


class FeatureBuildError(RunwayError):
    """The feature job could not build a partition."""

    kind = "feature build failed"


class GateRejectedError(RunwayError):
    """A candidate model failed its evaluation gates (in ``enforce`` mode)."""

    kind = "gate rejected"


class PromotionRefusedError(RunwayError):
    """A promotion was asked for where policy forbids it (e.g. from a backfill)."""

    kind = "promotion refused"


class RegistryError(RunwayError):
    """The model registry refused an operation, or a model cannot be found."""

    kind = "registry error"


class NoModelError(RunwayError):
    """No model version can score the interval (none registered, or none in effect)."""

    kind = "no model"


class ScoringError(RunwayError):
    """A model cannot score a partition (e.g. it was trained on another feature version)."""

    kind = "scoring failed"


# ---------------------------------------------------------- platform services


class ServiceUnavailableError(RunwayError):
    """A platform service (the MLflow tracking server, say) cannot be reached right now.

    Like :class:`SourceUnavailableError`, a retry may succeed: Airflow retries the task
    per the pipeline's ``retries`` / ``retry_delay_seconds``.
    """

    kind = "service unavailable"


class ServiceError(RunwayError):
    """A profile's own service (MLflow, Spark, the metadata database) is missing or will not start."""

    kind = "services"


class AirflowStartError(RunwayError):
    """An Airflow component of ``runway up`` would not start, or died more often than allowed."""

    kind = "airflow"


class AirflowAPIError(RunwayError):
    """Airflow's REST API refused a request or answered with an error."""

    kind = "airflow api"


class EmbeddedPostgresError(RunwayError):
    """The zero-config profile's embedded PostgreSQL would not start or answer."""

    kind = "embedded postgres"


class HomeBusyError(RunwayError):
    """Another ``runway up`` already runs in this home (it holds the home's claim)."""

    kind = "home in use"


# ------------------------------------------------------------------ retry classifier

#: Failures a retry may fix: the delivery may still arrive, the service come back, the
#: other task holding the day finish. Airflow retries them per the pipeline's ``retries``;
#: every other :class:`RunwayError` fails its task at once (a retry cannot fix bad data).
RETRYABLE: tuple[type[RunwayError], ...] = (
    SourceUnavailableError,
    ServiceUnavailableError,
    BusyError,
)


#: Words of a failed HTTP request that mean "the server is not there" (not "it said no").
_UNREACHABLE = (
    "Max retries exceeded",
    "Connection refused",
    "Failed to establish a new connection",
    "Connection aborted",
    "Read timed out",
    "RemoteDisconnected",
)


def unreachable(exc: BaseException) -> ServiceUnavailableError | None:
    """``exc`` as a :class:`ServiceUnavailableError` if it says MLflow's server is down."""
    import sys

    if "mlflow.exceptions" not in sys.modules:
        return None  # MLflow never ran in this process: not its error (and no import)
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return None
    text = str(exc)
    if not any(word in text for word in _UNREACHABLE):
        return None
    where = text.split(" failed with exception", 1)[0].removeprefix("API request to ")
    return ServiceUnavailableError(
        f"the MLflow tracking server does not answer ({where}): {text.splitlines()[0][-300:]}"
    )
