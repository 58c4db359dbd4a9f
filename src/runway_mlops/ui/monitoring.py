"""Model-monitoring reports inside the Airflow UI: one report folder per pipeline.

The monitoring stage rewrites ``<reports_dir>/monitoring/<pipeline>/`` (``index.html``,
``quality.png``, ``drift.png``, ``volume.png``: see
:func:`runway_mlops.monitoring.report.write_report`) on every run of the pipeline's
``<pipeline>_monitoring`` DAG, replacing the folder atomically. Routes, under the app's
mount point (``/runway`` in Airflow):

* ``/monitoring/`` — every pipeline with a report the user may see, with a link to it;
* ``/monitoring/<pipeline>`` (or ``/monitoring/<pipeline>/``) — a redirect to that
  pipeline's report, or a 404 page saying there is none yet;
* ``/monitoring/files/<pipeline>/<file>`` — the report files themselves. The path is
  resolved first (``..``, encoded, symlinked) and the folder it lands in names the
  pipeline; outside the monitoring folder, or no valid path at all, is a 404.

Login and authorisation are the reports' (:mod:`runway_mlops.ui.reports_app`): a
pipeline's report is shown to users the auth manager lets read the runs of its
``<pipeline>_monitoring`` DAG, asked before the file is looked for. Files are served as
:mod:`runway_mlops.ui.serving` says: the report's page as Runway's own (escaped, no
script), anything else as data.
"""

# No ``from __future__ import annotations``: FastAPI reads the real ``Annotated``
# dependency types of the route functions below.
import contextlib
import datetime as dt
import html
import re
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from runway_mlops.config import PlatformSettings
from runway_mlops.ui.common import UserDep, html_page, may_read_runs, run_reader
from runway_mlops.ui.serving import NO_FILE, is_file, resolve_inside, serve_file

#: What a pipeline name may look like; anything else (``..``, the staging and trash
#: folders ``.<pipeline>-<uuid>`` of the atomic swap, lock files, a name too long for
#: its ``<pipeline>_monitoring`` DAG id) is a 404.
PIPELINE = re.compile(r"^[a-z][a-z0-9_]{0,199}$")

_NO_REPORT = "No such monitoring report."


def monitoring_dag(pipeline: str) -> str:
    """The DAG whose runs write (and whose readers may read) ``pipeline``'s report."""
    return f"{pipeline}_monitoring"


def _root(settings: PlatformSettings) -> Path:
    return settings.reports_dir / "monitoring"


def _inside(path: Path, root: Path, pipeline: str) -> bool:
    """Whether ``path``, symlinks resolved, is in ``pipeline``'s own folder of ``root``."""
    try:
        return path.resolve().is_relative_to(root.resolve() / pipeline)
    except (OSError, ValueError, RuntimeError):
        return False


def _updated(index: Path) -> str:
    """When ``index`` was last written (UTC), or *unknown* when it is being replaced."""
    with contextlib.suppress(OSError):
        mtime = dt.datetime.fromtimestamp(index.stat().st_mtime, dt.UTC)
        return f"{mtime:%Y-%m-%d %H:%M} UTC"
    return "<span class='muted'>unknown</span>"


def monitoring_router(settings_loader: Callable[[], PlatformSettings]) -> APIRouter:
    """The ``/monitoring`` routes; every one requires an Airflow login (:data:`UserDep`)."""
    router = APIRouter(prefix="/monitoring")

    def authorise(user: object, pipeline: str) -> None:
        """404 for a name that is no pipeline's, 403 for a user who may not read its runs."""
        if not PIPELINE.match(pipeline):
            raise HTTPException(status.HTTP_404_NOT_FOUND, _NO_REPORT)
        if not may_read_runs(user, monitoring_dag(pipeline)):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"You may not read runs of {monitoring_dag(pipeline)}.",
            )

    @router.get("/", response_class=HTMLResponse)
    def index(user: UserDep) -> HTMLResponse:
        """Every pipeline with a monitoring report the user may see, by name."""
        root = _root(settings_loader())
        may_read = run_reader(user)
        rows = []
        for index_html in sorted(root.glob("*/index.html")):
            pipeline = index_html.parent.name
            # Only what the files route would serve: no symlinked folder, no staging one.
            if not PIPELINE.match(pipeline) or not _inside(index_html, root, pipeline):
                continue
            if not may_read(monitoring_dag(pipeline)):
                continue
            esc = html.escape(pipeline)
            # Relative to ``/monitoring/``: the files route, no redirect on the way.
            rows.append(
                f"<tr><td><a href='files/{esc}/index.html'>{esc}</a></td>"
                f"<td>{html.escape(monitoring_dag(pipeline))}</td>"
                f"<td>{_updated(index_html)}</td></tr>"
            )
        if not rows:
            return html_page(
                "Model monitoring",
                "<p>No monitoring report yet (or none of a DAG you may read). A report "
                "appears once a pipeline's monitoring DAG has run "
                "(<code>&lt;pipeline&gt;_monitoring</code>).</p>",
            )
        return html_page(
            "Model monitoring",
            "<table><tr><th>pipeline</th><th>written by</th><th>updated</th></tr>"
            + "".join(rows)
            + "</table>",
        )

    # Declared before ``/{pipeline}``: ``files`` is not a pipeline's page.
    @router.get("/files/{relative:path}", response_model=None)
    def report_file(relative: str, user: UserDep) -> FileResponse:
        """One file of a pipeline's report folder, if the user may read its monitoring runs.

        The pipeline is the folder the path lands in once resolved, never the path's first
        part as asked: ``flights/../taxis/index.html`` (or a link in ``flights`` pointing
        into ``taxis``) is taxis' report, for readers of taxis' monitoring runs.
        """
        found = resolve_inside(_root(settings_loader()), relative)
        pipeline, *rest = found.parts
        if not rest:
            raise HTTPException(status.HTTP_404_NOT_FOUND, NO_FILE)
        # Authorise before looking for the file, so a refusal says nothing about it.
        authorise(user, pipeline)
        return serve_file(found.path, runway_page=rest == ["index.html"])

    @router.get("/{pipeline}", response_model=None)
    @router.get("/{pipeline}/", response_model=None)
    def report(pipeline: str, request: Request, user: UserDep) -> RedirectResponse:
        """A redirect to ``pipeline``'s report, or a 404 page saying there is none yet."""
        authorise(user, pipeline)
        root = _root(settings_loader())
        index_html = root / pipeline / "index.html"
        if is_file(index_html) and _inside(index_html, root, pipeline):
            # Relative, so it holds under any mount point and base URL; from
            # ``/monitoring/<pipeline>/`` the files route is one level further up.
            up = "../" if request.url.path.endswith("/") else ""
            return RedirectResponse(
                f"{up}files/{pipeline}/index.html",
                status_code=status.HTTP_307_TEMPORARY_REDIRECT,
            )
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"No monitoring report for {pipeline} yet: it appears once the pipeline's "
            f"monitoring DAG ({monitoring_dag(pipeline)}) has run.",
        )

    return router
