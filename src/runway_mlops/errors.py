"""One error type per kind of failure, each with a message a person can act on."""

from __future__ import annotations

from typing import Any


class RunwayError(Exception):
    """Base class: every failure Runway reports on purpose derives from it."""

    #: Short name shown by the CLI before the message.
    kind = "error"


class ConfigError(RunwayError):
    """A settings or pipeline file is missing, malformed or has a bad value."""

    kind = "config error"


class SourceUnavailableError(RunwayError):
    """The source system has no data for the interval, or cannot be reached."""

    kind = "source unavailable"


class ServiceUnavailableError(RunwayError):
    """A platform service (the MLflow tracking server, say) cannot be reached right now.

    Like :class:`SourceUnavailableError`, a retry may succeed: Airflow retries the task
    per the pipeline's ``retries`` / ``retry_delay_seconds``.
    """

    kind = "service unavailable"


class BusyError(RunwayError):
    """Another task holds the day this one must write (ingest, validation or features).

    Retried by Airflow like an unavailable service: the other task finishes soon.
    """

    kind = "busy"


class SourceDataError(RunwayError):
    """The source delivered data that cannot be read (corrupt or truncated file)."""

    kind = "source data error"


class DataValidationError(RunwayError):
    """Validation found blocking problems; the partition is in quarantine."""

    kind = "validation failed"

    def __init__(self, message: str, *, failures: list[Any] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


class MissingPartitionError(RunwayError):
    """A stage needs a partition that does not exist (not ingested, or quarantined)."""

    kind = "missing partition"


class FeatureBuildError(RunwayError):
    """The feature job could not build a partition."""

    kind = "feature build failed"


class GateRejectedError(RunwayError):
    """A candidate model failed its evaluation gates (in ``enforce`` mode)."""

    kind = "gate rejected"


class PromotionRefusedError(RunwayError):
    """A promotion was asked for where policy forbids it (e.g. from a backfill)."""

    kind = "promotion refused"
