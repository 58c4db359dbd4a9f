"""How the Runway pages serve what is built from data: inert, and only from inside its folder.

Everything here answers on Airflow's own origin, where the ``_token`` cookie (readable by
scripts: Airflow's React UI needs that) opens the REST API. So nothing served may run a
script, and a path may only reach the report it names:

* :data:`RUNWAY_PAGE_HEADERS` go with the pages Runway renders itself, every value
  escaped (this app's pages, a day's validation summary, a monitoring report):
  ``sandbox allow-same-origin`` without ``allow-scripts`` and ``default-src 'none'``, so
  no script runs (inline, handler or ``javascript:`` URL) while the page keeps Airflow's
  origin, and with it the login cookie its own images and links need;
* :data:`DATA_FILE_HEADERS` go with every other report file, Great Expectations' Data
  Docs first (GX writes unexpected values into its HTML unescaped): ``sandbox`` alone
  gives the page an opaque origin, so even a script that ran could neither read Airflow's
  cookies nor call its API with them; ``img-src data:`` keeps the page from requesting
  anything (GX's pages need inline styles only, once trimmed to work offline);
* :func:`serve_file` names the content type from an allowlist of extensions: anything
  else (``.svg``, ``.js``, ``.xml``...) is a download, never rendered;
* :func:`resolve_inside` resolves a requested path (``..``, symlinks) before anyone
  decides whose report it is, and refuses what is outside the folder, or no valid path
  at all (NUL bytes, over-long names), with a 404 page instead of an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from fastapi import HTTPException, status
from fastapi.responses import FileResponse

#: What neither kind of page may do: load from elsewhere, submit, change its base URL,
#: or be framed by another site (Airflow's UI frames it from the same origin).
_COMMON_CSP = (
    "default-src 'none'",
    "style-src 'unsafe-inline'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'self'",
)

#: Pages Runway renders and escapes itself: no script, same origin (their own images).
RUNWAY_PAGE_CSP = "; ".join(("sandbox allow-same-origin", *_COMMON_CSP, "img-src 'self'"))
#: Every other report file: no script and an opaque origin; no request of any kind.
DATA_FILE_CSP = "; ".join(("sandbox", *_COMMON_CSP, "img-src data:"))

RUNWAY_PAGE_HEADERS = {
    "Content-Security-Policy": RUNWAY_PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
DATA_FILE_HEADERS = {**RUNWAY_PAGE_HEADERS, "Content-Security-Policy": DATA_FILE_CSP}

#: The only types a report file is served as, by extension; anything else is a download.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".gif": "image/gif",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".ico": "image/x-icon",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".otf": "font/otf",
    ".ttf": "font/ttf",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}
DOWNLOAD_TYPE = "application/octet-stream"

#: Longest path the files routes look at, and longest part of it (Linux's NAME_MAX, bytes).
MAX_PATH = 1024
MAX_NAME_BYTES = 255

NO_FILE = "No such report file."


class Inside(NamedTuple):
    """A requested path once resolved: the real file and its parts below the folder."""

    path: Path
    parts: tuple[str, ...]


def _not_found(why: str = "") -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{NO_FILE} {why}".strip())


def _path_problem(relative: str) -> str | None:
    """Why ``relative`` cannot name a file below a folder, or None."""
    if not relative:
        return "The path is empty."
    if "\x00" in relative:
        return "The path contains a NUL byte."
    if relative.startswith(("/", "\\")):
        return "The path is absolute."
    if len(relative) > MAX_PATH:
        return f"The path is longer than {MAX_PATH} characters."
    try:
        longest = max(len(os.fsencode(part)) for part in relative.split("/"))
    except UnicodeError:
        return "The path is not valid text."
    if longest > MAX_NAME_BYTES:
        return f"A part of the path is longer than {MAX_NAME_BYTES} bytes."
    return None


def resolve_inside(root: Path, relative: str) -> Inside:
    """Where ``relative`` leads below ``root``, ``..`` and symlinks resolved; else a 404.

    Callers decide whose file it is from the returned parts, never from ``relative``:
    ``a/ds=1/../../b/ds=1/x`` is ``b``'s file, and so is a link in ``a`` pointing into ``b``.
    """
    problem = _path_problem(relative)
    if problem:
        raise _not_found(problem)
    try:
        base = root.resolve()
        target = (base / relative).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise _not_found() from exc
    if target == base or not target.is_relative_to(base):
        raise _not_found()
    return Inside(target, target.relative_to(base).parts)


def is_file(path: Path) -> bool:
    """Whether ``path`` is a regular file (symlinks followed); False on any OS error."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def serve_file(path: Path, *, runway_page: bool) -> FileResponse:
    """``path`` with a content type from :data:`CONTENT_TYPES` and the security headers.

    ``runway_page``: the file is a page Runway rendered itself with every value escaped;
    anything else gets the opaque-origin :data:`DATA_FILE_HEADERS`.
    """
    if not is_file(path):
        raise _not_found()
    headers = {
        **(RUNWAY_PAGE_HEADERS if runway_page else DATA_FILE_HEADERS),
        "Cache-Control": "private, no-cache",
    }
    media_type = CONTENT_TYPES.get(path.suffix.lower())
    if media_type is None:
        return FileResponse(
            path,
            media_type=DOWNLOAD_TYPE,
            headers=headers,
            filename=path.name,
            content_disposition_type="attachment",
        )
    return FileResponse(path, media_type=media_type, headers=headers)
