# The MLflow tracking server of the prod deployment: PostgreSQL backend store, artifacts
# proxied to S3 (MinIO). mlflow, psycopg2-binary, boto3 and everything they pull in are
# installed at the versions of Runway's lock, so the server matches the clients in tasks.
FROM python:3.11-slim-bookworm

COPY requirements/runtime.txt /tmp/runtime.txt
RUN pip install --no-cache-dir -c /tmp/runtime.txt mlflow psycopg2-binary boto3 \
 && pip check && rm /tmp/runtime.txt

RUN useradd --create-home --uid 50001 mlflow
USER mlflow
EXPOSE 5050
ENTRYPOINT ["mlflow"]
CMD ["server", "--host", "0.0.0.0", "--port", "5050"]
