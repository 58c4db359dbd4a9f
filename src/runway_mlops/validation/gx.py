"""Great Expectations 1.x plumbing: one ephemeral context per validation run.

Importing GX takes seconds, so it happens here, lazily, once per process; a
:class:`GXSession` holds one in-memory context for every dataset of one ``validate()``
call (a pandas data source, one dataframe asset per dataset, one suite and validation
definition per dataset and purpose) and builds the Data Docs of all of them at the end.

The run identifier is derived from the day, never from the clock, so the Data Docs pages
of a day keep their paths when the day is validated again.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: COMPLETE gives ``unexpected_index_list`` (every failing row) for row-level checks.
RESULT_FORMAT = {"result_format": "COMPLETE", "partial_unexpected_count": 20}
#: Keys of GX's result JSON that change on every run (random ids, load time).
_VOLATILE_KEYS = {"id", "validation_id", "ge_load_time"}


def load_gx() -> Any:
    """Import Great Expectations with its usage analytics off (this machine is offline)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    return gx


def expectations() -> Any:
    """The ``great_expectations.expectations`` module (``gxe.ExpectColumn...``)."""
    load_gx()
    import great_expectations.expectations as gxe

    return gxe


class GXSession:
    """An ephemeral GX context shared by every dataset of one validation run."""

    def __init__(self, run_name: str, run_time: dt.datetime) -> None:
        gx = load_gx()
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self._source = self.context.data_sources.add_pandas("runway")
        self._assets: dict[str, Any] = {}
        self._run_id = RunIdentifier(run_name=run_name, run_time=run_time)

    def run(
        self, suite_name: str, asset_name: str, frame: pd.DataFrame, expectations: list[Any]
    ) -> tuple[list[Any], Any]:
        """Validate ``frame`` against ``expectations`` as suite ``suite_name``.

        Returns the per-expectation results in the order of ``expectations`` and the
        whole suite result. GX catches exceptions of single expectations (a missing
        column, incomparable types) and reports them in ``exception_info``.
        """
        gx = self._gx
        if asset_name not in self._assets:
            self._assets[asset_name] = self._source.add_dataframe_asset(asset_name)
        batch = self._assets[asset_name].add_batch_definition_whole_dataframe(suite_name)
        for position, expectation in enumerate(expectations):
            expectation.meta = {**(expectation.meta or {}), "runway_position": position}
        # All expectations at once: adding them one by one re-serialises the whole suite
        # into the store on every addition.
        suite = self.context.suites.add(
            gx.ExpectationSuite(name=suite_name, expectations=expectations)
        )
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=suite_name, data=batch, suite=suite)
        )
        result = definition.run(
            batch_parameters={"dataframe": frame},
            result_format=RESULT_FORMAT,
            run_id=self._run_id,
        )
        ordered: list[Any] = [None] * len(expectations)
        for item in result.results:
            ordered[item.expectation_config.meta["runway_position"]] = item
        return ordered, result

    def build_docs(self, site_dir: Path) -> None:
        """Write the Data Docs of every suite and result of this session to ``site_dir``."""
        self.context.add_data_docs_site(
            site_name="runway",
            site_config={
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                # The validation pages show every expectation with its result; separate
                # suite pages and (unused) profiling pages would only cost time.
                "site_section_builders": {"expectations": "0", "profiling": "0"},
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(site_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        self.context.build_data_docs(site_names=["runway"])


def exception_message(result: Any) -> str | None:
    """The message of an exception GX caught while evaluating one expectation, if any."""
    info = result.exception_info or {}
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "unknown error")
    # When a metric fails, GX keys the information by metric id instead.
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message") or "unknown error")
    return None


def unexpected_positions(result: Any) -> list[int] | None:
    """Row positions that failed a row-level expectation, or None if GX gave none."""
    indices = (result.result or {}).get("unexpected_index_list")
    if indices is None:
        return None
    return [int(i["index"]) if isinstance(i, dict) else int(i) for i in indices]


def result_json(result: Any) -> dict[str, Any]:
    """The suite result as JSON, without the ids and load time that change every run."""

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items() if k not in _VOLATILE_KEYS}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    return dict(scrub(result.to_json_dict()))
