"""The reliability tier reuses the integration tier's S3 endpoint (moto's server mode)."""

from tests.integration.conftest import s3_bucket, s3_endpoint  # noqa: F401
