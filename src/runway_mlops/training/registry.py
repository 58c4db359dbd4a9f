"""MLflow: tracking setup, the registered model, aliases and lineage tags.

One experiment per pipeline (``runway/<pipeline>``, artifacts under the profile's
``mlflow_artifact_uri``) and one registered model (``runway_<pipeline>``). Promotion is by
alias, never by the deprecated stages:

* ``challenger`` — the latest model that passed its gates;
* ``champion`` — the model inference uses;
* ``previous_champion`` — the champion before the last promotion, so a rollback is one
  alias move (the monitoring pipeline's job).

The tracking URI comes from the platform settings (SQLite on embedded defaults, a
PostgreSQL database or an MLflow server in production); credentials, if any, from the
environment MLflow reads (``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``, AWS variables).
"""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runway_mlops.errors import RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from runway_mlops.config import PipelineConfig, PlatformSettings

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous_champion"
#: MLflow's limit on a tag value.
MAX_TAG = 8000


def experiment_name(pipeline: PipelineConfig) -> str:
    return f"runway/{pipeline.name}"


#: MLflow's HTTP client retries a refused connection 7 times with a backoff factor of 2:
#: about four minutes per call before a task learns its tracking server is down. Runway
#: lets it try 3 times over ~7 s and leaves longer outages to Airflow's retry policy
#: (``retries`` / ``retry_delay_seconds`` of the pipeline). The environment overrides.
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


@functools.cache
def _configure() -> None:
    import logging

    # MLflow's "Successfully registered ..." and alembic migration logs drown the task log.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for key, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(key, value)


def connect(settings: PlatformSettings, pipeline: PipelineConfig) -> tuple[MlflowClient, str]:
    """Point MLflow at the profile's tracking URI; return a client and the experiment id."""
    import mlflow
    from mlflow import MlflowClient

    _configure()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    name = experiment_name(pipeline)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        artifacts = settings.mlflow_artifact_uri.rstrip("/") + f"/{pipeline.name}"
        if "://" not in artifacts:
            Path(artifacts).mkdir(parents=True, exist_ok=True)
        try:
            experiment_id = client.create_experiment(name, artifact_location=artifacts)
        except Exception:  # noqa: BLE001 - another task created it first
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
            experiment_id = found.experiment_id
    else:
        experiment_id = experiment.experiment_id
    return client, experiment_id


@dataclass(frozen=True)
class AliasedVersion:
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str]


def aliased(client: MlflowClient, model_name: str, alias: str) -> AliasedVersion | None:
    """The model version behind ``alias``, or None if the alias (or model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None
    return AliasedVersion(str(mv.version), mv.run_id, str(mv.source), dict(mv.tags or {}))


def git_commit(root: Path) -> str:
    """The checkout's commit (with ``-dirty`` if it has local changes), or ``unknown``."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def tag_value(value: str, *, note: str = "") -> str:
    """A tag value within MLflow's limit (long values point at the artifact instead)."""
    if len(value) <= MAX_TAG:
        return value
    tail = f"... (truncated; full list in {note})" if note else "... (truncated)"
    return value[: MAX_TAG - len(tail)] + tail


def register(
    client: MlflowClient,
    model_name: str,
    model_uri: str,
    run_id: str,
    *,
    tags: dict[str, str],
    description: str,
) -> str:
    """Register ``model_uri`` as a new version of ``model_name``; return the version.

    Idempotent per MLflow run: if a version from ``run_id`` exists already (a retried
    task), that version is returned instead of registering a second one.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
    except MlflowException:
        try:
            client.create_registered_model(
                model_name,
                description="Registered by Runway: see the gate decision on each version.",
            )
        except MlflowException:
            pass  # created concurrently
    existing = client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    if not existing:
        # A logged model's URI (models:/m-…) names its id; a tracking server wants it too.
        model_id = (
            model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
        )
        mv = client.create_model_version(
            model_name,
            model_uri,
            run_id=run_id,
            tags=tags,
            description=description,
            model_id=model_id,
        )
        return str(mv.version)
    version = str(max(int(v.version) for v in existing))
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    client.update_model_version(model_name, version, description=description)
    return version


def require_version(client: MlflowClient, model_name: str, version: str) -> None:
    """Fail with a clear message unless ``version`` of ``model_name`` is registered."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(model_name, version)
    except MlflowException:
        raise RegistryError(
            f"{model_name} has no version {version!r}: see the registered versions in MLflow "
            "or `runway train` output"
        ) from None


def promote(client: MlflowClient, model_name: str, version: str) -> str | None:
    """Make ``version`` the champion; the old champion becomes ``previous_champion``.

    Returns the previous champion's version (None for the first champion). Promoting the
    current champion again changes nothing.
    """
    current = aliased(client, model_name, CHAMPION)
    if current is not None and current.version == version:
        return aliased_version(client, model_name, PREVIOUS)
    if current is not None:
        client.set_registered_model_alias(model_name, PREVIOUS, current.version)
    client.set_registered_model_alias(model_name, CHAMPION, version)
    challenger = aliased(client, model_name, CHALLENGER)
    if challenger is not None and challenger.version == version:
        client.delete_registered_model_alias(model_name, CHALLENGER)
    return current.version if current else None


def rollback(client: MlflowClient, model_name: str, reason: str) -> tuple[str, str]:
    """Put ``previous_champion`` back as ``champion``; return (bad version, restored version).

    The demoted version is tagged ``runway.rolled_back`` with the reason and the
    ``previous_champion`` alias is removed (there is nothing to go back to twice).
    """
    current = aliased(client, model_name, CHAMPION)
    previous = aliased(client, model_name, PREVIOUS)
    if current is None or previous is None:
        raise RegistryError(
            f"{model_name} has no champion and previous_champion to roll back between"
        )
    client.set_registered_model_alias(model_name, CHAMPION, previous.version)
    client.delete_registered_model_alias(model_name, PREVIOUS)
    client.set_model_version_tag(
        model_name, current.version, "runway.rolled_back", reason[:MAX_TAG]
    )
    return current.version, previous.version


def aliased_version(client: MlflowClient, model_name: str, alias: str) -> str | None:
    found = aliased(client, model_name, alias)
    return found.version if found else None


def load_model(uri: str) -> Any:
    """Load a registered pyfunc model (``models:/<name>@<alias>`` or ``.../<version>``)."""
    import mlflow

    _configure()
    return mlflow.pyfunc.load_model(uri)
