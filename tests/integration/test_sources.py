"""The PostgreSQL and S3 sources against real services give the same lake as files."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from runway_mlops.config import load_settings
from runway_mlops.errors import SourceUnavailableError
from runway_mlops.lake import Lake
from runway_mlops.sample.seed import seed, seed_files
from runway_mlops.sources import PostgresSource
from runway_mlops.stages.ingest import ingest
from runway_mlops.storage import S3Store
from tests.conftest import CONFIG_DIR

DAY = dt.date(2013, 3, 10)  # a daylight-saving day: 23 hours long in New York


def _settings(tmp_path, name, **env):
    return load_settings(CONFIG_DIR, env={"RUNWAY_HOME": str(tmp_path / name), **env})


def _lake_frame(settings, dataset="flights"):
    frame = Lake(settings.lake_dir).read_frame("raw", "flights", dataset, DAY)
    return frame.sort_values(list(frame.columns[:6])).reset_index(drop=True)


def test_postgres_source_matches_files(
    tmp_path, flights_pipeline, pg_database, monkeypatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_SOURCE", pg_database)
    files = _settings(tmp_path, "files")
    seed(files, flights_pipeline, "files", DAY - dt.timedelta(days=1), DAY)
    ingest(files, flights_pipeline, DAY)

    pg_pipeline = flights_pipeline.model_copy(
        update={"source": flights_pipeline.source.model_copy(update={"kind": "postgres"})}
    )
    pg = _settings(tmp_path, "pg")
    summary = seed(pg, pg_pipeline, "postgres", DAY - dt.timedelta(days=1), DAY)
    assert summary.days == 2
    ingest(pg, pg_pipeline, DAY, run_id="pg")
    for dataset in ("flights", "weather"):
        pd.testing.assert_frame_equal(_lake_frame(pg, dataset), _lake_frame(files, dataset))
    assert len(_lake_frame(pg, "flights")) > 500

    # Seeding again replaces the rows: the day still has the same count.
    seed(pg, pg_pipeline, "postgres", DAY, DAY)
    ingest(pg, pg_pipeline, DAY)
    assert len(_lake_frame(pg, "flights")) == len(_lake_frame(files, "flights"))


def test_postgres_query_is_parameterised_and_quoted(flights_pipeline) -> None:
    import psycopg2

    source = PostgresSource("dbname=x", flights_pipeline)
    conn = psycopg2.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        text = source.query("flights").as_string(conn)
    finally:
        conn.close()
    assert (
        text
        == 'SELECT * FROM "public"."flights" WHERE "time_hour" >= %(start)s AND "time_hour" < %(end)s'
    )


def test_postgres_day_without_rows_is_unavailable(
    tmp_path, flights_pipeline, pg_database, monkeypatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_SOURCE", pg_database)
    pg_pipeline = flights_pipeline.model_copy(
        update={"source": flights_pipeline.source.model_copy(update={"kind": "postgres"})}
    )
    pg = _settings(tmp_path, "pg")
    seed(pg, pg_pipeline, "postgres", DAY, DAY)
    with pytest.raises(SourceUnavailableError, match=r"no rows of public.flights for 2013-03-11"):
        ingest(pg, pg_pipeline, DAY + dt.timedelta(days=1))


def test_s3_source_matches_files(tmp_path, flights_pipeline, s3_endpoint, s3_bucket) -> None:
    files = _settings(tmp_path, "files")
    seed(files, flights_pipeline, "files", DAY, DAY)
    ingest(files, flights_pipeline, DAY)

    s3 = _settings(
        tmp_path,
        "s3",
        RUNWAY_LANDING_URI=f"s3://{s3_bucket}/landing",
        RUNWAY_S3_ENDPOINT_URL=s3_endpoint,
    )
    seed(s3, flights_pipeline, "files", DAY, DAY)
    keys = S3Store(f"s3://{s3_bucket}/landing", s3_endpoint).list("flights")
    assert [k.key for k in keys] == [f"flights/ds={DAY}/flights.csv"]
    ingest(s3, flights_pipeline, DAY)
    pd.testing.assert_frame_equal(_lake_frame(s3), _lake_frame(files))


def test_s3_endpoint_down_is_a_clear_error(tmp_path, flights_pipeline) -> None:
    s3 = _settings(
        tmp_path,
        "s3",
        RUNWAY_LANDING_URI="s3://nobucket/landing",
        RUNWAY_S3_ENDPOINT_URL="http://127.0.0.1:9",
    )
    with pytest.raises(SourceUnavailableError, match=r"cannot reach http://127.0.0.1:9"):
        ingest(s3, flights_pipeline, DAY)


def test_seed_files_parquet_round_trip(tmp_path, flights_pipeline) -> None:
    from runway_mlops.storage import LocalStore

    parquet_pipeline = flights_pipeline.model_copy(
        update={"source": flights_pipeline.source.model_copy(update={"format": "parquet"})}
    )
    settings = _settings(tmp_path, "pq")
    seed_files(LocalStore(settings.landing_uri), parquet_pipeline, DAY, DAY, "parquet")
    ingest(settings, parquet_pipeline, DAY)
    csv = _settings(tmp_path, "csv")
    seed(csv, flights_pipeline, "files", DAY, DAY)
    ingest(csv, flights_pipeline, DAY)
    pd.testing.assert_frame_equal(_lake_frame(settings), _lake_frame(csv))


def test_s3_keys_that_would_escape_a_folder_are_refused(
    tmp_path, flights_pipeline, s3_endpoint, s3_bucket
) -> None:
    """S3 has no links, but a key's '..' segments would escape the quarantine folder."""
    import boto3

    from runway_mlops.errors import SourceDataError

    s3 = _settings(
        tmp_path,
        "s3",
        RUNWAY_LANDING_URI=f"s3://{s3_bucket}/landing",
        RUNWAY_S3_ENDPOINT_URL=s3_endpoint,
    )
    seed(s3, flights_pipeline, "files", DAY, DAY)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    folder = f"landing/weather/ds={DAY}/"
    client.put_object(Bucket=s3_bucket, Key=folder, Body=b"")  # a console "folder"
    client.put_object(Bucket=s3_bucket, Key=folder + "../../../escape.csv", Body=b"x\n")
    listing = S3Store(f"s3://{s3_bucket}/landing", s3_endpoint).scan(f"weather/ds={DAY}")
    assert [r.key for r in listing.refused] == [f"weather/ds={DAY}/../../../escape.csv"]
    assert listing.hidden == [f"weather/ds={DAY}/"]

    with pytest.raises(SourceDataError, match=r"escape.csv has a '\.\.' segment"):
        ingest(s3, flights_pipeline, DAY, run_id="t")
    kept = Lake(s3.lake_dir).partition_dir("quarantine", "flights", "weather.delivery", DAY)
    assert sorted(p.name for p in kept.rglob("*.csv")) == ["weather.csv"]
    assert not (kept.parent / "escape.csv").exists() and not (tmp_path / "escape.csv").exists()
    assert Lake(s3.lake_dir).exists("raw", "flights", "flights", DAY)


def test_postgres_timestamps_without_time_zone_are_local_time(
    tmp_path, flights_pipeline, pg_database, monkeypatch
) -> None:
    """A ``timestamp`` (no zone) column holds New York wall-clock time: same lake as files."""
    import psycopg2

    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_SOURCE", pg_database)
    files = _settings(tmp_path, "files")
    seed(files, flights_pipeline, "files", DAY, DAY)
    ingest(files, flights_pipeline, DAY)

    pg_pipeline = flights_pipeline.model_copy(
        update={"source": flights_pipeline.source.model_copy(update={"kind": "postgres"})}
    )
    pg = _settings(tmp_path, "pg")
    seed(pg, pg_pipeline, "postgres", DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1))
    conn = psycopg2.connect(pg_database)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE public.weather ALTER COLUMN time_hour TYPE timestamp "
                "USING time_hour AT TIME ZONE 'America/New_York'"
            )
    finally:
        conn.close()
    ingest(pg, pg_pipeline, DAY, run_id="pg")
    pd.testing.assert_frame_equal(_lake_frame(pg, "weather"), _lake_frame(files, "weather"))
    source = Lake(pg.lake_dir).manifest("raw", "flights", "weather", DAY)["source"]
    assert source["naive_timestamps"]["read_in"] == "America/New_York"
