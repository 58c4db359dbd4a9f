"""Validation reports, model-gate decisions and monitoring reports inside the Airflow UI:
a FastAPI app mounted by the Airflow plugin.

The validate stage writes one report folder per pipeline and day,
``<reports_dir>/validation/<pipeline>/ds=<day>/`` (a summary ``index.html`` plus the Great
Expectations Data Docs), and one catalog record per dataset. The plugin
(``plugins/runway_reports.py``) mounts this app in Airflow's API server under ``/runway``:

* ``/reports/`` — every validated day, newest first, with each dataset's outcome
  (from the catalog; report folders the catalog does not know are listed too);
* ``/reports/run?dag_id=...&run_id=...`` — the report of one DAG run: a redirect to its
  files, or a 404 page saying no report was recorded for that run (the target of the
  *Validation report* tab on task instances);
* ``/reports/files/<pipeline>/ds=<day>/<file>`` — the report files themselves. The path is
  resolved first (``..``, encoded, symlinked) and the folder it lands in decides whose
  report it is; outside the reports folder, or no valid path at all, is a 404;
* ``/decisions/...`` — the model-gate decisions and model events recorded in the platform
  database, one page per decision (routes in :mod:`runway_mlops.ui.decisions`);
* ``/monitoring/...`` — each pipeline's model-monitoring report, written by its
  ``<pipeline>_monitoring`` DAG (routes in :mod:`runway_mlops.ui.monitoring`).

Airflow mounts plugin apps without any authentication, so every route depends on
:func:`airflow_user`, which is Airflow's own ``get_user``: the JWT from an
``Authorization: Bearer`` header, else from the ``_token`` cookie the UI's login sets
(and that the browser sends with the iframe of an external view), validated by the
configured auth manager. Authorisation asks the same auth manager whether the user may
read the runs of the DAG that wrote the report (or decision); those helpers (login,
authorisation, HTML pages, error pages) live in :mod:`runway_mlops.ui.common`, shared by
every route of the app.

Every page and file is served so that nothing in the data can run a script on Airflow's
origin (see :mod:`runway_mlops.ui.serving`): values are escaped, and a
Content-Security-Policy sandbox without scripts goes with every response. Bad paths and
arguments get a 404 or 400 page, never an error.
"""

# No ``from __future__ import annotations``: FastAPI reads the real ``Annotated``
# dependency types of the route functions below.
import datetime as dt
import html
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from runway_mlops.config import PlatformSettings, load_settings
from runway_mlops.ui.common import (
    MAX_ID,
    NotLoggedIn,
    UserDep,
    bad_request,
    html_page,
    http_error,
    may_read_runs,
    not_logged_in,
    run_reader,
)
from runway_mlops.ui.serving import NO_FILE, is_file, resolve_inside, serve_file

#: ``<pipeline>/ds=<YYYY-MM-DD>/<file>``: the only shape of path the files route serves.
_REPORT_FILE = re.compile(r"^(?P<pipeline>[^/]+)/ds=(?P<day>\d{4}-\d{2}-\d{2})/(?P<rest>.+)$")


@dataclass
class _Day:
    """One row of the index: a pipeline's report folder for one day."""

    pipeline: str
    ds: dt.date
    link: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    outcomes: list[tuple[str, str]] = field(default_factory=list)


def create_app(settings_loader: Callable[[], PlatformSettings] = load_settings) -> FastAPI:
    """The app of every Runway page. Creating it reads nothing: settings load per request."""
    app = FastAPI(
        title="Runway reports: validation, gate decisions, model monitoring",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_exception_handler(NotLoggedIn, not_logged_in)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, bad_request)
    # Imported here: the decisions and monitoring modules build on the helpers of this one.
    from runway_mlops.ui.decisions import decisions_router
    from runway_mlops.ui.monitoring import monitoring_router

    app.include_router(decisions_router(settings_loader))
    app.include_router(monitoring_router(settings_loader))

    def file_link(report_path: str | None, root: Path) -> str | None:
        """``files/<pipeline>/ds=<day>/index.html`` for a recorded report that still exists."""
        if not report_path:
            return None
        try:
            path = Path(report_path).resolve()
        except (OSError, ValueError, RuntimeError):
            return None
        if not path.is_relative_to(root.resolve()) or not is_file(path):
            return None
        return "files/" + quote(path.relative_to(root.resolve()).as_posix(), safe="/=")

    def days_on_disk(root: Path) -> Iterable[_Day]:
        for index in root.glob("*/ds=*/index.html"):
            match = _REPORT_FILE.match(index.relative_to(root).as_posix())
            try:
                ds = dt.date.fromisoformat(match["day"]) if match else None
            except ValueError:
                ds = None
            if match and ds:
                yield _Day(match["pipeline"], ds, link=file_link(str(index), root))

    @app.get("/reports/", response_class=HTMLResponse)
    def index(user: UserDep) -> HTMLResponse:
        """Every validated day the user may see, newest first."""
        from runway_mlops import catalog

        settings = settings_loader()
        root = settings.reports_dir / "validation"
        days: dict[tuple[str, dt.date], _Day] = {}
        for record in catalog.list_validations(settings.database_url):
            day = days.setdefault(
                (record.pipeline, record.ds),
                _Day(record.pipeline, record.ds, dag_id=record.dag_id, run_id=record.run_id),
            )
            day.link = day.link or file_link(record.report_path, root)
            day.outcomes.append((record.dataset, record.outcome))
        for day in days_on_disk(root):
            days.setdefault((day.pipeline, day.ds), day)

        may_read = run_reader(user)
        rows = []
        for day in sorted(days.values(), key=lambda d: (d.ds, d.pipeline), reverse=True):
            if not may_read(day.dag_id):
                continue
            cell = f"<a href='{html.escape(day.link)}'>{day.ds}</a>" if day.link else str(day.ds)
            outcomes = (
                ", ".join(
                    f"<span class='{html.escape(outcome)}'>{html.escape(dataset)}: "
                    f"{html.escape(outcome)}</span>"
                    for dataset, outcome in day.outcomes
                )
                or "<span class='muted'>not in the catalog</span>"
            )
            run = " / ".join(html.escape(x) for x in (day.dag_id, day.run_id) if x)
            rows.append(
                f"<tr><td>{html.escape(day.pipeline)}</td><td>{cell}</td><td>{outcomes}</td>"
                f"<td>{run}</td></tr>"
            )
        if not rows:
            return html_page(
                "Validation reports",
                "<p>No validation report yet (or none of a DAG you may read). Reports appear "
                "here once a pipeline's <code>validate_raw</code> task has run.</p>",
            )
        return html_page(
            "Validation reports",
            "<table><tr><th>pipeline</th><th>day</th><th>datasets</th><th>DAG run</th></tr>"
            + "".join(rows)
            + "</table>",
        )

    @app.get("/reports/run", response_model=None)
    def for_run(
        user: UserDep,
        dag_id: Annotated[str, Query(min_length=1, max_length=MAX_ID)],
        run_id: Annotated[str, Query(min_length=1, max_length=MAX_ID)],
        task_id: Annotated[str | None, Query(max_length=MAX_ID)] = None,
    ) -> Response:
        """The report written by this DAG run, or a 404 page saying there is none."""
        from runway_mlops import catalog

        if not may_read_runs(user, dag_id):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"You may not read runs of {dag_id}.")
        settings = settings_loader()
        root = settings.reports_dir / "validation"
        records = [
            r
            for r in catalog.list_validations(settings.database_url, run_id=run_id)
            if r.dag_id == dag_id
        ]
        for record in records:
            link = file_link(record.report_path, root)
            if link:
                return RedirectResponse(link, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
        esc = html.escape
        why = (
            "its report was recorded, but the files are no longer in the reports folder"
            if records
            else "the run's <code>validate_raw</code> task has not finished yet, a later run "
            "of the same day replaced the report, or this DAG does not validate data"
        )
        task = f" (task <code>{esc(task_id)}</code>)" if task_id else ""
        return html_page(
            "No validation report",
            f"<p>No validation report was recorded for run <code>{esc(run_id)}</code> of "
            f"<code>{esc(dag_id)}</code>{task}: {why}.</p>"
            "<p><a href='./'>All validation reports</a></p>",
            status.HTTP_404_NOT_FOUND,
        )

    @app.get("/reports/files/{relative:path}", response_model=None)
    def report_file(relative: str, user: UserDep) -> FileResponse:
        """One file of a report folder, if the user may read the runs that wrote it.

        Whose report it is comes from where the path leads once resolved, never from the
        path as asked: ``a/ds=<day>/../../b/ds=<day>/index.html`` is ``b``'s report.
        """
        from runway_mlops import catalog

        settings = settings_loader()
        found = resolve_inside(settings.reports_dir / "validation", relative)
        match = _REPORT_FILE.match("/".join(found.parts))
        try:
            ds = dt.date.fromisoformat(match["day"]) if match else None
        except ValueError:
            ds = None
        if match is None or ds is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"{NO_FILE} Report files are at <pipeline>/ds=<YYYY-MM-DD>/<file>, "
                "with a valid date.",
            )
        # Authorise before looking for the file, so a refusal says nothing about it.
        records = catalog.list_validations(settings.database_url, match["pipeline"], ds=ds)
        dag_ids = {r.dag_id for r in records} or {None}
        if not any(may_read_runs(user, dag_id) for dag_id in dag_ids):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "You may not read the DAG runs of this report."
            )
        # The day's summary is Runway's own page; everything else (GX's Data Docs, the
        # results) is data.
        return serve_file(found.path, runway_page=match["rest"] == "index.html")

    return app
