"""The monitoring report: realised quality, drift and every policy decision, over time.

One folder per pipeline, ``<reports_dir>/monitoring/<pipeline>/``, rewritten by every
monitoring run from what the platform database holds (so it is the same whichever run
writes it last), and replaced atomically:

* ``index.html`` — the current aliases, the latest monitored day per model version and
  slice, the drift table, the policy decisions (every one that fired, and the latest
  day's), the model events;
* ``quality.png`` — realised metric per model version per day (champion solid, shadow
  dashed), with promotions, rollbacks, retraining triggers and rejected retrains marked:
  the timeline of the model's life;
* ``drift.png`` — PSI of the score and of the most drifting features per day, with the
  warn and alert lines;
* ``volume.png`` — labelled rows, observed positive rate and mean score per day.

The Airflow plugin serves the folder behind Airflow's login (*Browse → Model
monitoring*).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import html
import json
import os
import shutil
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runway_mlops import catalog
from runway_mlops.monitoring import psi
from runway_mlops.monitoring import store as mstore

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from runway_mlops.config import PipelineConfig, PlatformSettings

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a202c;max-width:1200px}
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #cbd5e0;padding:.25rem .5rem;
text-align:left;font-size:.9rem}th{background:#edf2f7}.ok{color:#276749}.warn{color:#975a16}
.alert,.fire,.rollback,.promote{color:#c53030;font-weight:600}.muted{color:#718096}
img{max-width:100%;border:1px solid #e2e8f0;margin:.5rem 0}h2{margin-top:1.6rem}
"""


@dataclass(frozen=True)
class Marker:
    """An event drawn on the timeline."""

    ds: dt.date
    kind: str  # promoted | rolled_back | retrain | rejected
    label: str


def report_dir(settings: PlatformSettings, pipeline: str) -> Path:
    return settings.reports_dir / "monitoring" / pipeline


def markers(settings: PlatformSettings, pipeline: PipelineConfig) -> list[Marker]:
    """Promotions and rollbacks (when they took effect), retraining triggers (the monitored
    day) and retrained models the gates rejected."""
    found: list[Marker] = []
    for event in catalog.list_model_events(settings.database_url, pipeline.name):
        when = event.details.get("effective_from")
        if event.event in ("promoted", "rolled_back") and when:
            text = (
                f"v{event.model_version}"
                if event.event == "promoted"
                else f"back to v{event.model_version}"
            )
            found.append(Marker(dt.date.fromisoformat(when), event.event, text))
    for decision in mstore.list_decisions(settings.database_url, pipeline.name, policy="retrain"):
        if decision.decision == "fire" and decision.acted:
            found.append(Marker(decision.ds, "retrain", "retrain"))
    for gate in catalog.list_gate_decisions(settings.database_url, pipeline.name):
        if gate.decision == "rejected" and (gate.run_id or "").startswith("retrain__"):
            with contextlib.suppress(ValueError):
                day = dt.date.fromisoformat(str(gate.run_id).rsplit("__", 1)[-1])
                found.append(Marker(day, "rejected", "rejected"))
    return sorted(found, key=lambda m: m.ds)


_MARKER_STYLE = {
    "promoted": ("#2f855a", "-"),
    "rolled_back": ("#c53030", "-"),
    "retrain": ("#dd6b20", ":"),
    "rejected": ("#718096", ":"),
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mark(ax: Axes, marks: list[Marker]) -> None:
    top = ax.get_ylim()[1]
    for i, mark in enumerate(marks):
        color, style = _MARKER_STYLE[mark.kind]
        # Matplotlib plots dates on a date axis; its stubs only say float.
        ax.axvline(mark.ds, color=color, linestyle=style, linewidth=1.1, alpha=0.8)  # type: ignore[arg-type]
        ax.annotate(
            mark.label,
            (mark.ds, top),
            xytext=(2, -10 - 10 * (i % 3)),
            textcoords="offset points",
            fontsize=7,
            color=color,
            rotation=0,
        )


def quality_plot(
    path: Path,
    rows: list[mstore.MetricRow],
    marks: list[Marker],
    *,
    metric: str,
    title: str,
    threshold: float | None = None,
    baseline: tuple[str, list[tuple[dt.date, float | None]]] | None = None,
) -> Path:
    """Realised ``metric`` per model version per day (7-day mean line, daily dots).

    ``baseline`` = (label, [(day, value)]) adds a grey 7-day-mean line for comparison
    (the replay's first model, never retrained).
    """
    import pandas as pd

    plt = _plt()
    fig, ax = plt.subplots(figsize=(12, 4.8), dpi=100)
    frame = pd.DataFrame(
        [{"ds": r.ds, "version": r.model_version, "role": r.role, "value": r.value} for r in rows]
    )
    if not frame.empty:
        frame = frame.dropna(subset=["value"])
        colors = plt.get_cmap("tab10")
        for i, ((version, role), part) in enumerate(
            sorted(
                frame.groupby(["version", "role"]),
                key=lambda kv: (int(kv[0][0]) if str(kv[0][0]).isdigit() else 0, kv[0][1]),
            )
        ):
            part = part.sort_values("ds")
            color = colors(int(version) % 10 if str(version).isdigit() else i % 10)
            dashed = role != "champion"
            ax.scatter(part["ds"], part["value"], s=6, color=color, alpha=0.35)
            smooth = part.set_index(pd.to_datetime(part["ds"]))["value"].rolling("7D").mean()
            # Days the version did not score are gaps in its line, not a straight segment
            # across weeks (a previous champion comes back in shadow for its probation).
            smooth = smooth.reindex(pd.date_range(smooth.index.min(), smooth.index.max(), freq="D"))
            ax.plot(
                smooth.index,
                smooth.to_numpy(),
                color=color,
                linestyle="--" if dashed else "-",
                linewidth=1.6,
                label=f"v{version} ({'shadow' if dashed else 'champion'})",
            )
    if baseline is not None:
        label, points = baseline
        series = pd.Series(
            [v for _, v in points], index=pd.to_datetime([d for d, _ in points]), dtype="float64"
        ).dropna()
        if not series.empty:
            ax.plot(
                series.index,
                series.rolling("7D").mean().to_numpy(),
                color="#4a5568",
                linestyle=":",
                linewidth=1.4,
                label=label,
            )
    if threshold is not None:
        ax.axhline(
            threshold,
            color="#c53030",
            linewidth=0.8,
            linestyle="--",
            label=f"retrain threshold {threshold}",
        )
    ax.set_ylabel(f"realised {metric} (dots: days; lines: 7-day mean)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower left", ncol=4)
    _mark(ax, marks)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _drift_plot(path: Path, rows: list[mstore.MetricRow], warn: float, alert: float) -> Path:
    import pandas as pd

    plt = _plt()
    fig, ax = plt.subplots(figsize=(12, 4), dpi=100)
    frame = pd.DataFrame(
        [
            {"ds": r.ds, "name": r.name, "value": r.value}
            for r in rows
            if r.role == "champion" and r.status != psi.BY_DAY  # never alerts: not drawn
        ]
    )
    if not frame.empty:
        frame = frame.dropna(subset=["value"])
        worst = frame[frame["name"] != "score"].groupby("name")["value"].max().nlargest(5).index
        for name in ["score", *worst]:
            part = frame[frame["name"] == name].sort_values("ds")
            if not part.empty:
                ax.plot(
                    part["ds"], part["value"], linewidth=2.0 if name == "score" else 1.0, label=name
                )
    ax.axhline(warn, color="#d69e2e", linestyle="--", linewidth=0.8, label=f"warn {warn}")
    ax.axhline(alert, color="#c53030", linestyle="--", linewidth=0.8, label=f"alert {alert}")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_ylabel("PSI (pooled days) vs the training rows")
    ax.set_title("Drift of the score and the five most drifting features")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncol=4)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _volume_plot(path: Path, rows: list[mstore.MetricRow]) -> Path:
    import pandas as pd

    plt = _plt()
    fig, ax = plt.subplots(figsize=(12, 3.6), dpi=100)
    champion = [r for r in rows if r.role == "champion" and r.kind == "quality"]
    frame = pd.DataFrame(
        [{"ds": r.ds, "metric": r.metric, "value": r.value, "rows": r.rows} for r in champion]
    )
    if not frame.empty:
        wide = frame.pivot_table(
            index="ds", columns="metric", values="value", aggfunc="first"
        ).sort_index()
        labelled = frame[frame["metric"] == "positive_rate"].set_index("ds")["rows"].sort_index()
        ax.bar(labelled.index, labelled.to_numpy(), color="#cbd5e0", label="labelled rows")
        ax.set_ylabel("labelled rows")
        twin = ax.twinx()
        for metric, color in (("positive_rate", "#2b6cb0"), ("mean_score", "#dd6b20")):
            if metric in wide:
                twin.plot(
                    wide.index,
                    wide[metric].to_numpy(),
                    color=color,
                    linewidth=1.2,
                    label=metric.replace("_", " "),
                )
        twin.set_ylabel("rate")
        twin.legend(fontsize=7, loc="upper right")
    ax.set_title("Volume, observed positive rate and mean score of the champion")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _text(value: Any) -> str:
    if value is None:
        return "<span class='muted'>n/a</span>"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def _table(headers: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "<p class='muted'>none</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _latest_tables(rows: list[mstore.MetricRow], metric: str) -> str:
    if not rows:
        return "<p class='muted'>Nothing monitored yet.</p>"
    last = max(r.ds for r in rows)
    today = [r for r in rows if r.ds == last]
    overall: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(dict)
    for r in today:
        if r.kind == "quality":
            overall[(r.model_version, r.role, r.alias)][r.metric] = r.value
            overall[(r.model_version, r.role, r.alias)]["rows"] = (
                r.rows
                if r.metric == metric
                else overall[(r.model_version, r.role, r.alias)].get("rows", r.rows)
            )
    names = list(mstore.QUALITY)
    quality = _table(
        ["version", "role", "alias", "labelled rows", *names],
        [
            [
                f"v{html.escape(v)}",
                html.escape(role),
                html.escape(alias),
                _text(vals.get("rows")),
                *[_text(vals.get(n)) for n in names],
            ]
            for (v, role, alias), vals in sorted(overall.items())
        ],
    )
    slices = _table(
        ["version", "slice", "ROC AUC", "rows"],
        [
            [f"v{html.escape(r.model_version)}", html.escape(r.name), _text(r.value), str(r.rows)]
            for r in sorted(
                (r for r in today if r.kind == "slice"), key=lambda r: (r.model_version, r.name)
            )
        ],
    )
    drift = _table(
        ["version", "feature", "PSI", "status"],
        [
            [
                f"v{html.escape(r.model_version)}",
                html.escape(r.name),
                _text(r.value),
                f"<span class='{html.escape(r.status)}'>{html.escape(r.status)}</span>",
            ]
            for r in sorted((r for r in today if r.kind == "drift"), key=lambda r: -(r.value or 0))
        ],
    )
    return (
        f"<h2>Latest monitored day: {last}</h2>{quality}"
        f"<h3>Slices</h3>{slices}<h3>Drift (PSI)</h3>"
        "<p>Each figure pools the day with the days before it (<code>drift.pooled_days</code>) "
        "against the champion's training rows; a column alerts above the configured threshold "
        "or <code>calibration_margin</code> times the PSI its validation days already showed, "
        "whichever is higher; <em>by_day</em> columns (the weekday, the month) vary between "
        f"days by nature and never alert.</p>{drift}"
    )


def _decisions_table(decisions: list[mstore.DecisionRecord]) -> str:
    return _table(
        ["day", "policy", "decision", "acted", "action", "reason", "figures", "DAG run"],
        [
            [
                str(d.ds),
                html.escape(d.policy),
                f"<span class='{html.escape(d.decision)}'>{html.escape(d.decision)}</span>",
                "yes" if d.acted else "no",
                html.escape(d.action),
                html.escape(d.reason),
                f"<details><summary>figures</summary><code>{html.escape(json.dumps(d.figures, sort_keys=True, default=str))}</code></details>",
                html.escape(" / ".join(x for x in (d.dag_id, d.run_id) if x)),
            ]
            for d in decisions
        ],
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_report(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    *,
    aliases: dict[str, str | None] | None = None,
) -> Path:
    """Rewrite the pipeline's monitoring report folder; return its ``index.html``."""
    assert pipeline.monitoring is not None
    config = pipeline.monitoring
    metric = config.policies.metric
    url = settings.database_url
    quality = mstore.metric_rows(url, pipeline.name, kind="quality")
    drift = mstore.metric_rows(url, pipeline.name, kind="drift", metric="psi")
    slices = mstore.metric_rows(url, pipeline.name, kind="slice")
    decisions = mstore.list_decisions(url, pipeline.name)
    events = catalog.list_model_events(url, pipeline.name)
    marks = markers(settings, pipeline)

    target = report_dir(settings, pipeline.name)
    staging = target.parent / f".{pipeline.name}-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        quality_plot(
            staging / "quality.png",
            [r for r in quality if r.metric == metric],
            marks,
            metric=metric,
            title=f"{pipeline.name}: realised {metric} per model version",
            threshold=config.policies.retrain.threshold,
        )
        _drift_plot(staging / "drift.png", drift, config.drift.psi_warn, config.drift.psi_alert)
        _volume_plot(staging / "volume.png", quality)
        fired = [
            d
            for d in decisions
            if d.decision not in ("hold", "no_challenger", "not_in_probation", "disabled")
        ]
        last_day = max((d.ds for d in decisions), default=None)
        latest = [d for d in decisions if d.ds == last_day]
        current = aliases or {}
        state = ", ".join(f"{k} v{v}" for k, v in current.items() if v) or "no aliases"
        body = (
            f"<p>Model <code>{html.escape(pipeline.model_name)}</code>: {html.escape(state)}. "
            f"Days monitored: {len({r.ds for r in quality})}. Policy metric: <code>{html.escape(metric)}</code>.</p>"
            "<h2>Realised quality over time</h2><img src='quality.png' alt='realised quality per model version'>"
            "<p class='muted'>Green lines: a promotion takes effect; red: a rollback; orange dotted: "
            "retraining triggered; grey dotted: a retrained model the gates rejected.</p>"
            + _latest_tables(quality + slices + drift, metric)
            + "<h2>Drift over time</h2><img src='drift.png' alt='PSI over time'>"
            + "<h2>Volume and calibration over time</h2><img src='volume.png' alt='volume'>"
            + "<h2>Policy decisions that fired</h2>"
            + _decisions_table(fired)
            + f"<h2>Policy decisions of the latest day ({last_day or 'none'})</h2>"
            + _decisions_table(latest)
            + "<h2>Model events</h2>"
            + _table(
                ["version", "event", "actor", "reason", "serves from", "DAG run"],
                [
                    [
                        f"v{html.escape(e.model_version or '')}",
                        html.escape(e.event),
                        html.escape(e.actor or ""),
                        html.escape(e.reason),
                        html.escape(str(e.details.get("effective_from") or "")),
                        html.escape(" / ".join(x for x in (e.dag_id, e.run_id) if x)),
                    ]
                    for e in reversed(events)
                ],
            )
        )
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>Monitoring: {html.escape(pipeline.name)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>Monitoring: {html.escape(pipeline.name)}</h1>{body}</body></html>"
        )
        (staging / "index.html").write_text(page, encoding="utf-8")
        with _locked(target.parent / f".{pipeline.name}.lock"):
            trash = None
            if target.exists():
                trash = target.parent / f".trash-{pipeline.name}-{uuid.uuid4().hex}"
                os.rename(target, trash)
            os.rename(staging, target)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "index.html"
