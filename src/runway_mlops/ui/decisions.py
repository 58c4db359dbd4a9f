"""Model-gate decisions inside the Airflow UI: the ``/decisions`` routes of the reports app.

The ``evaluate_gates`` task (and ``runway train`` outside Airflow) records one
decision per candidate model in the platform database (``runway_gate_decisions``: each
check with its value, threshold and verdict, and the inputs the decision was made on);
registration and promotion append model events (``runway_model_events``). These pages
show them, mounted with the validation reports under ``/runway`` by the Airflow plugin:

* ``/decisions/`` — every gate decision, newest first, then every model event, newest
  first;
* ``/decisions/<decision_id>`` — one decision: outcome, mode, model, inputs and every
  check (the ``/runway/decisions/<id>`` named in a rejected run's error message);
* ``/decisions/run?dag_id=...&run_id=...`` — a redirect to the decision recorded by that
  DAG run, or a 404 page saying there is none (the target of the *Gate decision* tab on
  DAG runs).

Login and authorisation are the reports' (:mod:`runway_mlops.ui.reports_app`): a record
is shown to users the auth manager lets read the runs of the DAG that wrote it, and a
record written outside Airflow (no DAG) to users who may read DAG runs in general.
"""

# No ``from __future__ import annotations``: FastAPI reads the real ``Annotated``
# dependency types of the route functions below.
import html
import json
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from runway_mlops.config import PlatformSettings
from runway_mlops.ui.common import MAX_ID, UserDep, html_page, may_read_runs, run_reader

if TYPE_CHECKING:
    from runway_mlops.catalog import GateDecisionRecord, ModelEvent

#: What a decision id may look like (they are MLflow run ids): anything else is a 404
#: before the database is asked. A leading letter or digit keeps out ``.`` and ``..``.
DECISION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

#: CSS class of each decision and check verdict (the shared page style defines them).
_CLASSES = {
    "passed": "passed",
    "rejected": "blocked",
    "pass": "passed",
    "fail": "blocked",
    "skip": "muted",
}

#: Inputs shown first on a decision's page, in this order; the others follow by name.
_INPUTS_FIRST = (
    "window",
    "rows",
    "champion_version",
    "champion_run_id",
    "candidate",
    "candidates_trained",
    "metrics",
    "best_single_feature",
    "reason",
)

#: Nesting shown as definition lists; deeper values are shown as JSON text.
_MAX_DEPTH = 5

_NONE = "<span class='muted'>none</span>"


def _text(value: Any) -> str:
    """One JSON scalar as escaped HTML: floats to six significant digits, nulls as *none*."""
    if value is None:
        return _NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return html.escape(f"{value:.6g}")
    return html.escape(str(value))


def _styled(value: str) -> str:
    """A decision or verdict, coloured by the shared style (unknown values plain)."""
    css = _CLASSES.get(value)
    return f"<span class='{css}'>{html.escape(value)}</span>" if css else html.escape(value)


def _json_html(value: Any, depth: int = 0) -> str:
    """A JSON value as readable, escaped HTML: objects as definition lists, lists as lists."""
    if depth >= _MAX_DEPTH and isinstance(value, dict | list):
        return f"<code>{html.escape(json.dumps(value, sort_keys=True, default=str))}</code>"
    if isinstance(value, dict):
        if not value:
            return _NONE
        items = "".join(
            f"<dt>{html.escape(str(key))}</dt><dd>{_json_html(item, depth + 1)}</dd>"
            for key, item in value.items()
        )
        return f"<dl>{items}</dl>"
    if isinstance(value, list):
        if not value:
            return _NONE
        if not any(isinstance(item, dict | list) for item in value):
            return ", ".join(_text(item) for item in value)
        return (
            "<ol>" + "".join(f"<li>{_json_html(item, depth + 1)}</li>" for item in value) + "</ol>"
        )
    return _text(value)


def _ordered_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    first = {key: inputs[key] for key in _INPUTS_FIRST if key in inputs}
    return first | {key: inputs[key] for key in sorted(inputs) if key not in first}


def _version(version: str | None) -> str:
    return html.escape(version) if version else "<span class='muted'>not registered</span>"


def _dag_run(dag_id: str | None, run_id: str | None) -> str:
    ids = " / ".join(html.escape(x) for x in (dag_id, run_id) if x)
    return ids or "<span class='muted'>outside Airflow</span>"


def _failed(record: "GateDecisionRecord") -> int:
    return sum(check.get("verdict") == "fail" for check in record.checks)


def _decision_link(decision_id: Any, text: str) -> str:
    """A link to a decision's page; relative, so it works from every ``/decisions/`` page.

    Empty for an id the decision page would refuse.
    """
    if not isinstance(decision_id, str) or not DECISION_ID.match(decision_id):
        return ""
    return f"<a href='{html.escape(quote(decision_id))}'>{text}</a>"


def _events_table(events: Iterable["ModelEvent"], *, link_decisions: bool = True) -> str:
    rows = [
        "<tr>"
        f"<td>{html.escape(event.pipeline)}</td><td>{html.escape(event.model_name)}</td>"
        f"<td>{_version(event.model_version)}</td><td>{html.escape(event.event)}</td>"
        f"<td>{_text(event.actor)}</td><td>{html.escape(event.reason)}</td>"
        f"<td>{_dag_run(event.dag_id, event.run_id)}</td>"
        + (
            f"<td>{_decision_link(event.details.get('decision_id'), 'decision')}</td>"
            if link_decisions
            else ""
        )
        + "</tr>"
        for event in events
    ]
    if not rows:
        return "<p class='muted'>No model event yet (or none of a DAG you may read).</p>"
    return (
        "<table><tr><th>pipeline</th><th>model</th><th>version</th><th>event</th>"
        "<th>actor</th><th>reason</th><th>DAG run</th>"
        + ("<th></th>" if link_decisions else "")
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )


def _checks_table(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return "<p class='muted'>No check was recorded.</p>"
    rows = "".join(
        "<tr>"
        f"<td>{_text(check.get('name'))}</td><td>{_text(check.get('value'))}</td>"
        f"<td>{_text(check.get('threshold'))}</td>"
        f"<td>{_styled(str(check.get('verdict', '')))}</td>"
        f"<td>{_text(check.get('detail'))}</td>"
        "</tr>"
        for check in checks
    )
    return (
        "<table><tr><th>check</th><th>value</th><th>threshold</th><th>verdict</th>"
        f"<th>detail</th></tr>{rows}</table>"
    )


def _decision_page(record: "GateDecisionRecord", events: list["ModelEvent"]) -> HTMLResponse:
    esc = html.escape
    if record.blocking:
        blocked = "yes: the model was not registered"
    elif record.mode == "dry_run" and record.decision == "rejected":
        blocked = "no: dry run, the decision is recorded and never blocks"
    else:
        blocked = "no"
    summary = {
        "decision": _styled(record.decision),
        "blocked": esc(blocked),
        "mode": esc(record.mode),
        "failed checks": f"{_failed(record)} of {len(record.checks)}",
        "pipeline": esc(record.pipeline),
        "model": esc(record.model_name),
        "version": _version(record.model_version),
        "MLflow run": f"<code>{esc(record.mlflow_run_id)}</code>",
        "DAG run": _dag_run(record.dag_id, record.run_id),
    }
    body = (
        "<dl>"
        + "".join(f"<dt>{esc(key)}</dt><dd>{value}</dd>" for key, value in summary.items())
        + "</dl><h2>Checks</h2>"
        + _checks_table(record.checks)
        + "<h2>Inputs</h2>"
        + _json_html(_ordered_inputs(record.inputs))
    )
    if events:
        body += "<h2>Model events of this decision</h2>" + _events_table(
            events, link_decisions=False
        )
    body += "<p><a href='./'>All model gate decisions</a></p>"
    return html_page(f"Gate decision {record.decision_id}", body)


def decisions_router(settings_loader: Callable[[], PlatformSettings]) -> APIRouter:
    """The ``/decisions`` routes; every one requires an Airflow login (:data:`UserDep`)."""
    router = APIRouter(prefix="/decisions")

    @router.get("/", response_class=HTMLResponse)
    def index(user: UserDep) -> HTMLResponse:
        """Every gate decision and model event the user may see, newest first."""
        from runway_mlops import catalog

        url = settings_loader().database_url
        may_read = run_reader(user)
        rows = [
            "<tr>"
            f"<td>{html.escape(record.pipeline)}</td><td>{html.escape(record.model_name)}</td>"
            f"<td>{_version(record.model_version)}</td><td>{_styled(record.decision)}</td>"
            f"<td>{html.escape(record.mode)}</td><td>{_failed(record)}</td>"
            f"<td>{_dag_run(record.dag_id, record.run_id)}</td>"
            f"<td>{_decision_link(record.decision_id, 'details')}</td>"
            "</tr>"
            for record in catalog.list_gate_decisions(url)
            if may_read(record.dag_id)
        ]
        if rows:
            decisions = (
                "<table><tr><th>pipeline</th><th>model</th><th>version</th><th>decision</th>"
                "<th>mode</th><th>failed checks</th><th>DAG run</th><th></th></tr>"
                + "".join(rows)
                + "</table>"
            )
        else:
            decisions = (
                "<p>No gate decision yet (or none of a DAG you may read). Decisions appear "
                "here once a pipeline's <code>evaluate_gates</code> task has run.</p>"
            )
        # The catalog lists events oldest first (they are history).
        events = [e for e in reversed(catalog.list_model_events(url)) if may_read(e.dag_id)]
        return html_page(
            "Model gate decisions",
            decisions + "<h2>Model events</h2>" + _events_table(events),
        )

    # Declared before ``/{decision_id}``, which would otherwise take ``run`` as an id.
    @router.get("/run", response_model=None)
    def for_run(
        user: UserDep,
        dag_id: Annotated[str, Query(min_length=1, max_length=MAX_ID)],
        run_id: Annotated[str, Query(min_length=1, max_length=MAX_ID)],
    ) -> Response:
        """The decision recorded by this DAG run (the latest), or a 404 page saying none was."""
        from runway_mlops import catalog

        if not may_read_runs(user, dag_id):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"You may not read runs of {dag_id}.")
        url = settings_loader().database_url
        records = catalog.list_gate_decisions(url, dag_id=dag_id, run_id=run_id)
        # Newest first; a record with an id the detail page would refuse is skipped.
        for record in records:
            if DECISION_ID.match(record.decision_id):
                return RedirectResponse(
                    quote(record.decision_id), status_code=status.HTTP_307_TEMPORARY_REDIRECT
                )
        esc = html.escape
        return html_page(
            "No gate decision",
            f"<p>No gate decision was recorded for run <code>{esc(run_id)}</code> of "
            f"<code>{esc(dag_id)}</code>: the run's <code>evaluate_gates</code> task has not "
            "finished yet, it failed before deciding, or this DAG does not train a model.</p>"
            "<p><a href='./'>All model gate decisions</a></p>",
            status.HTTP_404_NOT_FOUND,
        )

    @router.get("/{decision_id}", response_class=HTMLResponse)
    def decision(decision_id: str, user: UserDep) -> HTMLResponse:
        """One decision with its checks and inputs, if the user may read the DAG's runs."""
        from runway_mlops import catalog

        if not DECISION_ID.match(decision_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such gate decision.")
        url = settings_loader().database_url
        record = catalog.get_gate_decision(url, decision_id)
        if record is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"No gate decision {decision_id} was recorded."
            )
        may_read = run_reader(user)
        if not may_read(record.dag_id):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "You may not read the DAG runs that recorded this gate decision.",
            )
        events = [
            event
            for event in reversed(catalog.list_model_events(url, record.pipeline))
            if event.details.get("decision_id") == decision_id and may_read(event.dag_id)
        ]
        return _decision_page(record, events)

    return router
