# Spark standalone master and workers of the prod deployment: the Runway image (the same
# Python, Java 17, locked pyspark and runway_mlops as the Airflow worker that runs the
# drivers, so Python UDFs and job code import on the executors) plus the S3A connector.
#
# docker/compose.yaml passes the Runway image as the `runway-airflow` build context. Alone:
#   docker build -f docker/Dockerfile -t runway-airflow .
#   docker build -f docker/spark.Dockerfile -t runway-spark .
FROM runway-airflow

# hadoop-aws must match the Hadoop client bundled in pyspark (Spark 4.2: Hadoop 3.5.0; the
# build stops if it does not). Since Hadoop 3.4, S3A uses the AWS SDK v2, whose bundle
# (software.amazon.awssdk:bundle) replaces the v1 aws-java-sdk-bundle; 2.35.4 and
# analyticsaccelerator-s3 1.3.1 are the versions hadoop-aws 3.5.0 is built against. Each
# download is checked against the SHA-1 Maven Central publishes for it.
ARG HADOOP_VERSION=3.5.0
ARG AWS_SDK_VERSION=2.35.4
ARG ANALYTICS_ACCELERATOR_VERSION=1.3.1
ARG MAVEN=https://repo1.maven.org/maven2

USER root
RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends curl ca-certificates; \
    jars="$(python -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"; \
    test -f "$jars/hadoop-client-api-${HADOOP_VERSION}.jar"; \
    for path in \
        "org/apache/hadoop/hadoop-aws/${HADOOP_VERSION}/hadoop-aws-${HADOOP_VERSION}.jar" \
        "software/amazon/awssdk/bundle/${AWS_SDK_VERSION}/bundle-${AWS_SDK_VERSION}.jar" \
        "software/amazon/s3/analyticsaccelerator/analyticsaccelerator-s3/${ANALYTICS_ACCELERATOR_VERSION}/analyticsaccelerator-s3-${ANALYTICS_ACCELERATOR_VERSION}.jar"; \
    do \
        jar="$jars/$(basename "$path")"; \
        curl -fsSL --retry 3 -o "$jar" "$MAVEN/$path"; \
        echo "$(curl -fsSL --retry 3 "$MAVEN/$path.sha1" | cut -c1-40)  $jar" | sha1sum -c -; \
    done; \
    apt-get purge -y --auto-remove curl; \
    rm -rf /var/lib/apt/lists/*
USER airflow

ENV PYSPARK_PYTHON=python
ENTRYPOINT []
CMD ["spark-class", "org.apache.spark.deploy.master.Master"]
