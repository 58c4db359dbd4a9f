"""Validation reports inside the Airflow UI: a FastAPI app mounted by the Airflow plugin.

Routes (under the plugin's prefix, ``/runway``):

* ``/reports/`` — every validated day, newest first, with each dataset's outcome;
* ``/reports/run?dag_id=...&run_id=...`` — the report of one DAG run (the link on each
  ``validate_raw`` task instance);
* ``/reports/files/<pipeline>/ds=<day>/...`` — the report pages themselves.

Airflow gives plugin apps no authentication, so every route depends on Airflow's own
``get_user`` (the UI's ``_token`` cookie or an ``Authorization: Bearer`` JWT, checked by
the configured auth manager) and asks the auth manager whether that user may read DAG
runs. File paths are resolved and must stay inside the reports folder.
"""

# No ``from __future__ import annotations``: FastAPI must see the real ``Annotated``
# dependencies, which refer to closures defined inside create_app().
import html
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from runway_mlops.config import PlatformSettings, load_settings

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a202c}
table{border-collapse:collapse}th,td{border:1px solid #cbd5e0;padding:.3rem .6rem;text-align:left}
th{background:#edf2f7}.passed{color:#276749}.warned{color:#975a16}.blocked{color:#c53030}
"""


def _require_reader(dag_id_param: bool = False) -> Callable[..., Any]:
    """A dependency: a logged-in Airflow user allowed to read DAG runs."""
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        DagAccessEntity,
        DagDetails,
    )
    from airflow.api_fastapi.core_api.security import get_user

    def check(request: Request, user: Annotated[Any, Depends(get_user)]) -> Any:
        from airflow.api_fastapi.app import get_auth_manager

        dag_id = request.query_params.get("dag_id") if dag_id_param else None
        allowed = get_auth_manager().is_authorized_dag(
            method="GET",
            access_entity=DagAccessEntity.RUN,
            details=DagDetails(id=dag_id),
            user=user,
        )
        if not allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "not allowed to read DAG runs")
        return user

    return check


def safe_path(root: Path, relative: str) -> Path:
    """``root / relative`` if it resolves inside ``root`` (symlinks included), else 404."""
    base = root.resolve()
    if "\x00" in relative or relative.startswith(("/", "\\")):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such report file")
    target = (base / relative).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such report file")
    return target


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def create_app(settings_loader: Callable[[], PlatformSettings] = load_settings) -> FastAPI:
    app = FastAPI(title="Runway validation reports", docs_url=None, redoc_url=None)
    reader = _require_reader()
    run_reader = _require_reader(dag_id_param=True)

    def reports_root() -> Path:
        return settings_loader().reports_dir / "validation"

    def relative_link(record: Any) -> str | None:
        if not record.report_path:
            return None
        try:
            rel = Path(record.report_path).resolve().relative_to(reports_root().resolve())
        except ValueError:
            return None
        return f"files/{rel.as_posix()}"

    @app.get("/reports/", response_class=HTMLResponse)
    def index(user: Annotated[Any, Depends(reader)]) -> HTMLResponse:
        from runway_mlops import catalog

        settings = settings_loader()
        records = catalog.list_validations(settings.database_url)
        days: dict[tuple[str, Any], list[Any]] = {}
        for record in records:
            days.setdefault((record.pipeline, record.ds), []).append(record)
        if not days:
            return _page("Validation reports", "<p>No validation has run yet.</p>")
        rows = []
        for (pipeline, ds), group in sorted(days.items(), key=lambda kv: kv[0][1], reverse=True):
            link = relative_link(group[0])
            outcomes = ", ".join(
                f"<span class='{r.outcome}'>{html.escape(r.dataset)}: {r.outcome}</span>"
                for r in group
            )
            cell = f"<a href='{html.escape(link)}'>{ds}</a>" if link else str(ds)
            rows.append(
                f"<tr><td>{html.escape(pipeline)}</td><td>{cell}</td><td>{outcomes}</td>"
                f"<td>{html.escape(group[0].run_id or '')}</td></tr>"
            )
        return _page(
            "Validation reports",
            "<table><tr><th>pipeline</th><th>day</th><th>datasets</th><th>last run</th></tr>"
            + "".join(rows)
            + "</table>",
        )

    @app.get("/reports/run", response_model=None)
    def for_run(
        dag_id: str, run_id: str, user: Annotated[Any, Depends(run_reader)]
    ) -> RedirectResponse | HTMLResponse:
        from runway_mlops import catalog

        settings = settings_loader()
        records = [
            r
            for r in catalog.list_validations(settings.database_url, run_id=run_id)
            if r.dag_id in (None, dag_id)
        ]
        link = relative_link(records[0]) if records else None
        if not link:
            return HTMLResponse(
                _page(
                    "No validation report",
                    f"<p>No validation report was recorded for run "
                    f"<code>{html.escape(run_id)}</code> of <code>{html.escape(dag_id)}</code>: "
                    "its validate_raw task has not run yet, or a later run of the same day "
                    "replaced it. See <a href='./'>all reports</a>.</p>",
                ).body,
                status_code=404,
            )
        return RedirectResponse(link, status_code=status.HTTP_307_TEMPORARY_REDIRECT)

    @app.get("/reports/files/{relative:path}", response_model=None)
    def report_file(relative: str, user: Annotated[Any, Depends(reader)]) -> FileResponse:
        return FileResponse(safe_path(reports_root(), relative))

    return app
