"""What logging a training split to MLflow costs: MLflow's schema scan vs Runway's (issue 17).

    .venv/bin/python bench/dataset_schema.py [--rows 250000] [--repeats 3]

A frame shaped like a year's training split (``--rows`` rows: 30 float features, four
string columns, the integer label, a null in the last row of one float and one string
column) is given to ``mlflow.data.from_pandas`` (its ``schema`` converts and checks every
value) and to ``runway_mlops.training.dataset.frame_schema`` (each column's type from its
first non-null values, ``required`` from a vectorised null check). Both schemas must be
equal; the median of ``--repeats`` timings of each is written to
``bench/results/dataset_schema.json`` (not committed) and printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import RESULTS, machine, write_result  # noqa: E402  (bench/benchkit.py)


def main() -> int:
    import mlflow.data
    import numpy as np
    import pandas as pd

    from runway_mlops.training.dataset import frame_schema

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"f{i}": rng.random(args.rows) for i in range(30)})
    for name in ("carrier", "origin", "dest", "tailnum"):
        frame[name] = rng.choice(list("ABCDEFGHIJ"), args.rows).astype(object)
    frame["delayed"] = rng.integers(0, 2, args.rows)
    frame.loc[args.rows - 1, ["f0", "tailnum"]] = [float("nan"), None]

    mlflow_s, runway_s = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        theirs = mlflow.data.from_pandas(frame, source="split.parquet", targets="delayed").schema
        mlflow_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        ours = frame_schema(frame)
        runway_s.append(time.perf_counter() - started)
        if ours != theirs:
            raise SystemExit(f"schemas differ:\n{ours}\n{theirs}")
    result = {
        "rows": args.rows,
        "columns": frame.shape[1],
        "mlflow_schema_s": statistics.median(mlflow_s),
        "runway_schema_s": statistics.median(runway_s),
        "machine": machine(),
    }
    write_result(RESULTS / "dataset_schema.json", result)
    print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
