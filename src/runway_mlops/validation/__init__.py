"""Data validation with Great Expectations 1.x: suites from the pipeline file, drift, reports.

Where it sits: ``ingest`` writes raw partitions; :func:`runway_mlops.stages.validate.validate`
judges them with this package and publishes ``validated`` partitions (what the feature
job reads) or quarantines what failed.

* :mod:`~runway_mlops.validation.suite` — a dataset's checks as GX expectations, and
  GX results turned back into failures and rows to quarantine;
* :mod:`~runway_mlops.validation.drift` — the trailing window of validated days, mean
  bands and KL divergence;
* :mod:`~runway_mlops.validation.gx` — the one ephemeral GX context of a run;
* :mod:`~runway_mlops.validation.judge` — one dataset's verdict and row routing;
* :mod:`~runway_mlops.validation.report` — Data Docs and the summary page;
* :mod:`~runway_mlops.validation.results` — the result types.

Importing this package is cheap; Great Expectations (seconds to import) is loaded only
when a validation runs.
"""

from runway_mlops.validation.results import DatasetResult, Failure, Outcome, ValidationOutcome

__all__ = ["DatasetResult", "Failure", "Outcome", "ValidationOutcome"]
