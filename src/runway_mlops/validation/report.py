"""The validation report of one day: GX Data Docs plus a self-contained summary page.

Layout of ``<reports_dir>/validation/<pipeline>/ds=<day>/`` (replaced as a whole on
rerun, so a reader never sees half of two runs)::

    index.html                  summary: outcome, failures, quarantined rows, links
    results/<dataset>.json      Runway's verdict and GX's full validation result
    gx/validations/<suite>/<run>/<time>/<batch>.html
                                GX page per suite run (<dataset>, <dataset>-drift)
    gx/index.html, gx/static/   GX's own site index and assets

GX's pages load Bootstrap, jQuery, bootstrap-table, Font Awesome and Vega from public
CDNs. Their content is rendered into the HTML, but GX's ``gx/index.html`` fills its
tables with JavaScript from those CDNs and is empty without them, and on a machine
without internet every page waits for the CDN requests before rendering. So the
external tags are removed and a small inline stylesheet added (:func:`make_offline`),
and ``index.html`` links straight to the validation pages. Vega charts (e.g. the KL
histogram) do not render offline; the observed values are in the tables.

GX writes unexpected values into its pages as they were delivered, markup included; the
reports app (:mod:`runway_mlops.ui.serving`) serves them sandboxed, so none can run. The
summary page escapes every value it shows.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runway_mlops.validation.gx import GXSession
from runway_mlops.validation.judge import Judgement, drift_suite
from runway_mlops.validation.results import DatasetResult

_EXTERNAL = re.compile(
    r"<script[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>"
    r"|<link[^>]*\bhref=[\"']https?://[^>]*>"
    r"|<img[^>]*\bsrc=[\"']https?://[^>]*>",
    re.IGNORECASE,
)

_SUITE_LINK = re.compile(r"<a[^>]*\bhref=[\"'][^\"']*expectations/[^>]*>(.*?)</a>", re.DOTALL)

_GX_OFFLINE_STYLE = """<style>
body{font-family:system-ui,sans-serif;margin:1rem 2rem;color:#1a202c}
table{border-collapse:collapse;margin:.5rem 0}
th,td{border:1px solid #cbd5e0;padding:.25rem .5rem;text-align:left;vertical-align:top}
.text-danger{color:#c53030}.text-success{color:#276749}
footer,#ge-cta-footer,.navbar-toggler,.sticky{display:none}
.fa-check-circle::before{content:"\\2714  passed";font-style:normal}
.fa-times::before{content:"\\2718  failed";font-style:normal;font-weight:600}
</style>"""

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1a202c;max-width:80rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
th,td{border:1px solid #cbd5e0;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#edf2f7}td.n{text-align:right}
.passed{color:#276749;font-weight:600}.warned{color:#975a16;font-weight:600}
.blocked{color:#c53030;font-weight:600}.block{color:#c53030}.warn{color:#975a16}
.quarantine{color:#6b46c1}code{background:#edf2f7;padding:0 .2rem}.note{color:#4a5568}
"""


def make_offline(site_dir: Path) -> None:
    """Make GX's pages work offline and point "Home" at the summary page.

    Removes CDN scripts, stylesheets and images, adds a small inline stylesheet (with
    text for the pass/fail icons), and unlinks the suite pages, which are not built.
    """
    for page in site_dir.rglob("*.html"):
        text = _EXTERNAL.sub("", page.read_text(encoding="utf-8"))
        text = _SUITE_LINK.sub(r"\1", text)
        text = text.replace("</head>", _GX_OFFLINE_STYLE + "</head>", 1)
        depth = len(page.relative_to(site_dir).parts) - 1
        if depth:
            # GX's own index needs the CDN scripts to show anything; ours does not.
            home = "../" * depth + "index.html"
            text = text.replace(f'href="{home}"', f'href="../{home}"')
        page.write_text(text, encoding="utf-8")


def gx_pages(report_dir: Path, dataset: str) -> dict[str, str]:
    """Links (relative to the report folder) to the GX pages of one dataset."""
    pages: dict[str, str] = {}
    site = report_dir / "gx"
    for label, suite in (("checks", dataset), ("drift", drift_suite(dataset))):
        found = sorted((site / "validations" / suite).rglob("*.html"))
        if found:
            pages[label] = found[-1].relative_to(report_dir).as_posix()
    return pages


def write_report(
    session: GXSession,
    report_dir: Path,
    pipeline: str,
    ds: dt.date,
    judgements: Mapping[str, Judgement],
) -> Path:
    """Build the day's report and swap it in place of any earlier one; return index.html.

    Sets ``pages`` of every dataset result to its GX page links.
    """
    report_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = report_dir.with_name(f".{report_dir.name}.staging-{uuid.uuid4().hex}")
    try:
        session.build_docs(staging / "gx")
        make_offline(staging / "gx")
        (staging / "results").mkdir()
        for name, judgement in judgements.items():
            judgement.result.pages = gx_pages(staging, name)
            body = {**judgement.result.as_dict(), "great_expectations": judgement.gx_results}
            (staging / "results" / f"{name}.json").write_text(
                json.dumps(body, indent=1, sort_keys=True, default=str)
            )
        results = {name: j.result for name, j in judgements.items()}
        (staging / "index.html").write_text(index_html(pipeline, ds, results), encoding="utf-8")
        _swap(staging, report_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report_dir / "index.html"


def _swap(staging: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex}")
        os.rename(target, old)
    os.rename(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return html.escape(", ".join("…" if v is None else str(v) for v in value))
    return html.escape(str(value))


def index_html(pipeline: str, ds: dt.date, results: Mapping[str, DatasetResult]) -> str:
    """The summary page: one self-contained HTML file (inline CSS, relative links only)."""
    # Every value goes through ``esc``: names, messages and observed values come from the
    # configuration and the delivered data (numbers are formatted, never markup).
    esc = html.escape
    worst = {r.outcome for r in results.values()}
    overall = "blocked" if "blocked" in worst else "warned" if "warned" in worst else "passed"
    day = esc(ds.isoformat())
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Validation of {esc(pipeline)} {day}: {overall}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Validation of {esc(pipeline)} on {day}: <span class='{overall}'>{overall}</span></h1>",
        "<table><tr><th>dataset</th><th>outcome</th><th>rows</th><th>validated</th>"
        "<th>quarantined</th><th>failed checks</th><th>Great Expectations pages</th></tr>",
    ]
    for name, r in results.items():
        links = " · ".join(
            f"<a href='{esc(path)}'>{esc(label)}</a>" for label, path in r.pages.items()
        )
        whole = " (whole day)" if r.outcome == "blocked" and r.rows_quarantined else ""
        out.append(
            f"<tr><td><a href='#{esc(name)}'>{esc(name)}</a></td>"
            f"<td class='{esc(r.outcome)}'>{esc(r.outcome)}</td><td class='n'>{r.rows:,}</td>"
            f"<td class='n'>{r.rows_validated:,}</td>"
            f"<td class='n'>{r.rows_quarantined:,}{whole}</td>"
            f"<td class='n'>{len(r.failures)}</td><td>{links or '—'}</td></tr>"
        )
    out.append("</table>")
    for name, r in results.items():
        out.append(
            f"<h2 id='{esc(name)}'>{esc(name)}: "
            f"<span class='{esc(r.outcome)}'>{esc(r.outcome)}</span></h2>"
        )
        if r.failures:
            out.append(
                "<table><tr><th>severity</th><th>problem</th><th>expectation</th>"
                "<th>column</th><th>observed</th><th>threshold</th><th>rows</th></tr>"
            )
            for f in r.failures:
                out.append(
                    f"<tr><td class='{esc(f.severity)}'>{esc(f.severity)}</td>"
                    f"<td>{esc(f.message)}</td>"
                    f"<td><code>{esc(f.expectation)}</code></td><td>{_cell(f.column)}</td>"
                    f"<td>{_cell(f.observed)}</td><td>{_cell(f.threshold)}</td>"
                    f"<td class='n'>{f.rows or ''}</td></tr>"
                )
            out.append("</table>")
        else:
            out.append("<p>Every check passed.</p>")
        if r.quarantine_reasons:
            out.append("<table><tr><th>quarantine reason</th><th>rows</th></tr>")
            out.extend(
                f"<tr><td>{esc(reason)}</td><td class='n'>{count:,}</td></tr>"
                for reason, count in r.quarantine_reasons.items()
            )
            out.append("</table>")
        out.extend(f"<p class='note'>Note: {esc(note)}</p>" for note in r.notes)
    out.append(
        "<p class='note'>Quarantined data: <code>runway quarantine list --pipeline "
        f"{esc(pipeline)} --date {day}</code>. Full results: <code>results/&lt;dataset&gt;.json"
        "</code>. The Great Expectations pages are trimmed to work offline (no CDN styles "
        "or charts).</p></body></html>"
    )
    return "\n".join(out)
