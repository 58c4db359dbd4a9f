"""Training: data set from the lake, LightGBM, evaluation gates and the MLflow registry.

Modules, in the order a training run uses them: :mod:`.dataset` (window, split, lineage),
:mod:`.model` (features spec, LightGBM, the registered pyfunc), :mod:`.metrics`,
:mod:`.plots`, :mod:`.gates` (checks and the decision) and :mod:`.registry` (MLflow
tracking, registration, aliases). :mod:`runway_mlops.stages.train` chains them; the
Airflow tasks and ``runway train`` call that module.
"""
