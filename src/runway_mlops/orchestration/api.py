"""A small client of Airflow's public REST API (``/api/v2``), as a user would call it.

Used by ``runway demo`` to start and follow a backfill, and by the tests and the bench.
It logs in like any API user: ``POST /auth/token`` with a username and password gives a
JWT sent as ``Authorization: Bearer``.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import httpx

from runway_mlops.errors import AirflowAPIError


class AirflowAPI:
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout)
        response = self._client.post(
            "/auth/token", json={"username": username, "password": password}
        )
        if response.status_code >= 300:
            raise AirflowAPIError(
                f"login as {username!r} at {self.base_url} failed: "
                f"{response.status_code} {response.text[:200]}"
            )
        self.token = response.json()["access_token"]
        self._client.headers["Authorization"] = f"Bearer {self.token}"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> AirflowAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._client.request(method, f"/api/v2{path}", **kwargs)
        if response.status_code >= 300:
            raise AirflowAPIError(
                f"{method} /api/v2{path} answered {response.status_code}: {response.text[:500]}"
            )
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    # ------------------------------------------------------------------ helpers
    def dag(self, dag_id: str) -> dict[str, Any] | None:
        response = self._client.get(f"/api/v2/dags/{dag_id}")
        if response.status_code == 404:
            return None
        if response.status_code >= 300:
            raise AirflowAPIError(f"GET dag {dag_id}: {response.status_code} {response.text}")
        return dict(response.json())

    def create_backfill(
        self,
        dag_id: str,
        from_date: dt.datetime,
        to_date: dt.datetime,
        *,
        max_active_runs: int = 2,
        reprocess_behavior: str = "completed",
        conf: dict[str, Any] | None = None,
        retry_seconds: float = 120,
    ) -> dict[str, Any]:
        """Create a backfill; ``conf`` is every run's conf (its params, e.g. ``model``)."""
        body: dict[str, Any] = {
            "dag_id": dag_id,
            "from_date": from_date.isoformat(),
            "to_date": to_date.isoformat(),
            "max_active_runs": max_active_runs,
            "reprocess_behavior": reprocess_behavior,
        }
        if conf:
            body["dag_run_conf"] = conf
        # On SQLite (embedded defaults) Airflow refuses backfill creation with 503 while
        # another writer holds the database; that passes within seconds, so retry.
        deadline = time.monotonic() + retry_seconds
        while True:
            response = self._client.post("/api/v2/backfills", json=body)
            # 409 "already a running backfill": the last one's runs have finished but the
            # scheduler has not marked it complete yet (its next loop does; seconds later).
            busy = response.status_code == 503 or (
                response.status_code == 409 and "already a running backfill" in response.text
            )
            if busy and time.monotonic() < deadline:
                time.sleep(2)
                continue
            if response.status_code >= 300:
                raise AirflowAPIError(
                    f"POST /api/v2/backfills answered {response.status_code}: {response.text[:500]}"
                )
            return dict(response.json())

    def backfill(self, backfill_id: int) -> dict[str, Any]:
        return dict(self.get(f"/backfills/{backfill_id}"))

    def dag_runs(self, dag_id: str, **params: Any) -> list[dict[str, Any]]:
        params.setdefault("limit", 1000)
        return list(self.get(f"/dags/{dag_id}/dagRuns", **params)["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str = "~", **params: Any) -> list[dict[str, Any]]:
        params.setdefault("limit", 1000)
        return list(
            self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", **params)["task_instances"]
        )

    def trigger(
        self,
        dag_id: str,
        conf: dict[str, Any] | None = None,
        *,
        logical_date: dt.datetime | None = None,
        data_interval: tuple[dt.datetime, dt.datetime] | None = None,
    ) -> dict[str, Any]:
        """Trigger a manual run, as *Trigger DAG w/ config* does: now (no logical date), or
        for the data interval that starts at ``logical_date`` (or exactly ``data_interval``)."""
        body: dict[str, Any] = {
            "logical_date": logical_date.isoformat() if logical_date else None,
            "conf": conf or {},
        }
        if data_interval is not None:
            body["data_interval_start"] = data_interval[0].isoformat()
            body["data_interval_end"] = data_interval[1].isoformat()
        return dict(self.request("POST", f"/dags/{dag_id}/dagRuns", json=body))

    def clear_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """Clear every task instance of a run, as the UI's *Clear* does: it runs again."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/clear"
        return dict(self.request("POST", path, json={"dry_run": False}))

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/dags/{dag_id}/dagRuns/{run_id}"))

    def respond(
        self, dag_id: str, run_id: str, task_id: str, options: list[str], map_index: int = -1
    ) -> dict[str, Any]:
        """Answer a human-in-the-loop task (e.g. ``["Approve"]``) as the logged-in user."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails"
        return dict(self.request("PATCH", path, json={"chosen_options": options}))
