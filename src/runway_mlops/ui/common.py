"""What every page of Runway's UI app shares: login, authorisation, HTML pages, error pages.

Airflow mounts plugin apps without any authentication, so every route depends on
:func:`airflow_user`, which is Airflow's own ``get_user`` (a Bearer token, else the
``_token`` cookie the UI's login sets), and asks the same auth manager whether the user
may read the runs of the DAG behind a page (:func:`may_read_runs`). Pages are small,
escaped HTML with a scriptless Content-Security-Policy sandbox
(:data:`runway_mlops.ui.serving.RUNWAY_PAGE_HEADERS`); errors are 4xx pages that link back
to the index of the pages asked for. Used by :mod:`runway_mlops.ui.reports_app` and its
routers (:mod:`runway_mlops.ui.decisions`, :mod:`runway_mlops.ui.monitoring`).
"""

# No ``from __future__ import annotations``: FastAPI reads the real ``Annotated`` types.
import html
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from runway_mlops.ui.serving import RUNWAY_PAGE_HEADERS

#: Longest DAG, run or task id a query may carry: Airflow's own (``airflow.models.base.ID_LEN``).
MAX_ID = 250

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a202c}
table{border-collapse:collapse}th,td{border:1px solid #cbd5e0;padding:.3rem .6rem;text-align:left}
th{background:#edf2f7}.passed{color:#276749}.warned{color:#975a16}.blocked{color:#c53030}
.muted{color:#718096}dt{font-weight:600}dd{margin:0 0 .3rem 1.2rem}h2{margin-top:1.5rem}
"""

# Same configuration as Airflow's own ``bearer_scheme``: a missing or non-Bearer
# Authorization header is not an error here, the cookie is tried next.
_bearer = HTTPBearer(auto_error=False)


class NotLoggedIn(HTTPException):
    """Airflow refused the request's credentials: none, expired or invalid."""


async def airflow_user(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Any:
    """The Airflow user of this request, authenticated exactly as Airflow's REST API does.

    Delegates to ``airflow.api_fastapi.core_api.security.get_user``: a Bearer token wins,
    else the ``_token`` cookie (already validated by Airflow's ``JWTRefreshMiddleware``
    when the app runs inside the API server); the auth manager checks signature, expiry,
    audience and revocation. Raises :class:`NotLoggedIn` (401, or 403 for an invalid
    token, as Airflow answers) otherwise.
    """
    # Imported here, not at module level: the plugin module is imported by every Airflow
    # process (each task loads plugins for its macros), and Airflow's API security module
    # pulls in most of the API server (~3 s). Only the API server ever gets here.
    from airflow.api_fastapi.core_api.security import get_user

    try:
        # Arguments: the request, the OAuth2 form token (documentation only, unused) and
        # the Bearer credentials, as FastAPI would resolve them for Airflow's own routes.
        return await get_user(request, None, bearer)
    except HTTPException as exc:
        raise NotLoggedIn(exc.status_code, exc.detail) from exc


UserDep = Annotated[Any, Depends(airflow_user)]


def may_read_runs(user: Any, dag_id: str | None) -> bool:
    """Whether the auth manager lets ``user`` read the runs of ``dag_id``.

    The same question, asked the same way (the DAG's team included), as Airflow's
    ``requires_access_dag("GET", DagAccessEntity.RUN)`` on ``/api/v2/dags/{dag_id}/dagRuns``.
    ``dag_id=None`` (a report written outside Airflow, e.g. by ``runway run validate``)
    asks about DAG runs in general.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        DagAccessEntity,
        DagDetails,
    )
    from airflow.models.dag import DagModel

    team_name = DagModel.get_team_name(dag_id) if dag_id else None
    return get_auth_manager().is_authorized_dag(
        method="GET",
        access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=dag_id, team_name=team_name),
        user=user,
    )


def run_reader(user: Any) -> Callable[[str | None], bool]:
    """:func:`may_read_runs` for ``user``, asked once per DAG id (one page lists many)."""
    allowed: dict[str | None, bool] = {}

    def may_read(dag_id: str | None) -> bool:
        if dag_id not in allowed:
            allowed[dag_id] = may_read_runs(user, dag_id)
        return allowed[dag_id]

    return may_read


def html_page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    """A page of this app; ``title`` is escaped here, ``body`` must be escaped HTML."""
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status_code,
        headers={"Cache-Control": "no-store", **RUNWAY_PAGE_HEADERS},
    )


def _requested_path(request: Request) -> str:
    """The path and query of this request (mount prefix and base URL included)."""
    path = quote(request.url.path, safe="/:@!$&'()*+,;=-._~")
    return f"{path}?{request.url.query}" if request.url.query else path


async def not_logged_in(request: Request, exc: Exception) -> Response:
    """A page with a link to Airflow's login that comes back here; never the report."""
    from airflow.api_fastapi.app import get_auth_manager

    code = exc.status_code if isinstance(exc, HTTPException) else status.HTTP_401_UNAUTHORIZED
    detail = exc.detail if isinstance(exc, HTTPException) else "Not authenticated"
    login = get_auth_manager().get_url_login(next_url=_requested_path(request))
    return html_page(
        "Log in to Airflow first",
        f"<p>{html.escape(str(detail))}. These pages are shown to logged-in Airflow users "
        f"only: <a href='{html.escape(login)}'>log in</a> and you will come back here.</p>",
        code,
    )


async def http_error(request: Request, exc: Exception) -> Response:
    """Errors as small HTML pages: they are shown inside the Airflow UI's iframe."""
    code = getattr(exc, "status_code", status.HTTP_500_INTERNAL_SERVER_ERROR)
    detail = getattr(exc, "detail", "Error")
    titles = {403: "Not allowed", 404: "Not found"}
    return html_page(
        titles.get(code, f"Error {code}"),
        f"<p>{html.escape(str(detail))}</p><p>{_index_link(request)}</p>",
        code,
    )


async def bad_request(request: Request, exc: Exception) -> Response:
    """Arguments FastAPI refused (missing, too long...) as a small 400 page naming each."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    problems = "".join(
        f"<li><code>{html.escape(str(error['loc'][-1]))}</code> "
        f"({html.escape(str(error['loc'][0]))}): {html.escape(str(error['msg']))}</li>"
        for error in errors
    )
    return html_page(
        "Bad request",
        f"<p>This page cannot be shown for these arguments:</p><ul>{problems}</ul>"
        f"<p>{_index_link(request)}</p>",
        status.HTTP_400_BAD_REQUEST,
    )


def _index_link(request: Request) -> str:
    """A link to the index of the pages asked for, from any route (absolute path, no host)."""
    mount = request.scope.get("root_path", "").rstrip("/")
    if request.url.path.startswith(f"{mount}/decisions"):
        return f"<a href='{html.escape(mount)}/decisions/'>All model gate decisions</a>"
    if request.url.path.startswith(f"{mount}/monitoring"):
        return f"<a href='{html.escape(mount)}/monitoring/'>All monitoring reports</a>"
    return f"<a href='{html.escape(mount)}/reports/'>All validation reports</a>"
