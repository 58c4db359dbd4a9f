-- The databases of Runway's prod profile, created when the postgres volume is initialised
-- (the image runs /docker-entrypoint-initdb.d/ once, as POSTGRES_USER, which owns them).
CREATE DATABASE runway;          -- database_url: catalog, validation results, predictions
CREATE DATABASE runway_airflow;  -- airflow_database_url: Airflow metadata, Celery results
CREATE DATABASE runway_mlflow;   -- mlflow_backend_store_uri: MLflow runs and registry
