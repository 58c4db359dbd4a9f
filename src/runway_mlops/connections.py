"""Credentials: resolved from Airflow connections or the environment, never from code.

Lookup order for a connection id ``x``:

1. the environment variable ``AIRFLOW_CONN_X`` (URI or Airflow's JSON form);
2. Airflow's connection lookup, when running inside an Airflow task (secrets backends,
   the metadata database);
3. the profile's credential-free local defaults (``connections`` in platform.yaml),
   which exist only for the embedded demo.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote

from runway_mlops.config import PlatformSettings
from runway_mlops.errors import ConfigError


def env_var(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def _from_json(conn_id: str, text: str) -> str:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"{env_var(conn_id)} is neither a URI nor valid JSON") from None
    scheme = {"postgres": "postgresql"}.get(data.get("conn_type", ""), data.get("conn_type", ""))
    auth = ""
    if data.get("login"):
        auth = quote(data["login"], safe="")
        if data.get("password"):
            auth += ":" + quote(data["password"], safe="")
        auth += "@"
    port = f":{data['port']}" if data.get("port") else ""
    database = f"/{data['schema']}" if data.get("schema") else ""
    return f"{scheme}://{auth}{data.get('host', '')}{port}{database}"


def connection_uri(conn_id: str, settings: PlatformSettings | None = None) -> str:
    """The URI of Airflow connection ``conn_id`` (see the module docstring for the order)."""
    value = os.environ.get(env_var(conn_id))
    if value:
        return _from_json(conn_id, value) if value.lstrip().startswith("{") else value
    if os.environ.get("AIRFLOW_CTX_DAG_ID"):
        try:
            from airflow.sdk import BaseHook

            return str(BaseHook.get_connection(conn_id).get_uri())
        except Exception:  # noqa: BLE001 - fall through to the local default, then a clear error
            pass
    if settings is not None and conn_id in settings.connections:
        return settings.connections[conn_id]
    raise ConfigError(
        f"no connection {conn_id!r}: define it in Airflow (Admin > Connections) or set "
        f"{env_var(conn_id)} to its URI"
    )


def postgres_dsn(uri: str) -> str:
    """psycopg2 accepts postgresql:// URIs; Airflow also writes postgres://."""
    if uri.startswith("postgres://"):
        return "postgresql://" + uri.removeprefix("postgres://")
    return uri
