"""Object access for landing zones: a local folder or an ``s3://bucket/prefix`` via boto3.

Both expose the same small interface (list, read, write), so the file source and the
seeder run the same code path against a folder in the demo and against S3 (MinIO, AWS,
or moto's server in tests). S3 credentials come from the environment / boto3's usual
chain (``AWS_ACCESS_KEY_ID`` …), never from configuration files; the endpoint comes
from the ``s3_endpoint_url`` setting.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from runway_mlops.errors import SourceUnavailableError


@dataclass(frozen=True)
class StoredObject:
    key: str  # relative to the store root, "/"-separated
    size: int


class ObjectStore(Protocol):
    uri: str

    def list(self, prefix: str) -> list[StoredObject]: ...

    def read(self, key: str) -> bytes: ...

    def write(self, key: str, data: bytes) -> None: ...

    def read_optional(self, key: str) -> bytes | None: ...

    def describe(self, key: str) -> str: ...


class LocalStore:
    """A folder; writes land under a temporary name and are renamed into place."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def describe(self, key: str) -> str:
        return str(self.root / key)

    def list(self, prefix: str) -> list[StoredObject]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(
            (
                StoredObject(str(p.relative_to(self.root)).replace(os.sep, "/"), p.stat().st_size)
                for p in base.rglob("*")
                if p.is_file() and not p.name.startswith(".")
            ),
            key=lambda o: o.key,
        )

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def read_optional(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is no such object."""
        try:
            return self.read(key)
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)


class S3Store:
    """An ``s3://bucket/prefix`` location through boto3."""

    def __init__(self, uri: str, endpoint_url: str | None = None) -> None:
        rest = uri.removeprefix("s3://")
        self.bucket, _, prefix = rest.partition("/")
        if not self.bucket:
            raise SourceUnavailableError(f"bad S3 URI {uri!r}: expected s3://bucket/prefix")
        self.prefix = prefix.strip("/")
        self.uri = uri.rstrip("/")
        self.endpoint_url = endpoint_url
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                config=Config(retries={"max_attempts": 3, "mode": "standard"}),
            )
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise SourceUnavailableError(f"S3 {what} failed ({code}): {exc}") from None
        except BotoCoreError as exc:
            where = self.endpoint_url or "AWS"
            raise SourceUnavailableError(f"S3 {what} failed, cannot reach {where}: {exc}") from None

    def list(self, prefix: str) -> list[StoredObject]:
        full = self._key(prefix).rstrip("/") + "/"
        strip = f"{self.prefix}/" if self.prefix else ""
        out: list[StoredObject] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(
                f"list of {self.describe(prefix)}", self.client.list_objects_v2, **kwargs
            )
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if not name.startswith("."):
                    out.append(StoredObject(item["Key"].removeprefix(strip), int(item["Size"])))
            if not page.get("IsTruncated"):
                return sorted(out, key=lambda o: o.key)
            token = page["NextContinuationToken"]

    def read(self, key: str) -> bytes:
        body = self._call(
            f"read of {self.describe(key)}",
            self.client.get_object,
            Bucket=self.bucket,
            Key=self._key(key),
        )
        return body["Body"].read()

    def write(self, key: str, data: bytes) -> None:
        # A single PUT is atomic in S3: readers see the old object or the new one.
        self._call(
            f"write of {self.describe(key)}",
            self.client.put_object,
            Bucket=self.bucket,
            Key=self._key(key),
            Body=data,
        )

    def read_optional(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            code = exc.response.get("Error", {}).get("Code", "")
            raise SourceUnavailableError(
                f"S3 read of {self.describe(key)} failed ({code}): {exc}"
            ) from None
        except BotoCoreError as exc:  # endpoint down, timeouts
            raise SourceUnavailableError(
                f"S3 read of {self.describe(key)} failed, cannot reach "
                f"{self.endpoint_url or 'AWS'}: {exc}"
            ) from None
        return bytes(body["Body"].read())

    def write_file(self, key: str, path: Path) -> None:
        self._call(
            f"upload of {path} to {self.describe(key)}",
            self.client.upload_file,
            Filename=str(path),
            Bucket=self.bucket,
            Key=self._key(key),
        )

    def download(self, key: str, path: Path) -> bool:
        """Download one object to ``path``; False when there is no such object."""
        data = self.read_optional(key)
        if data is None:
            return False
        path.write_bytes(data)
        return True

    def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            self._call(
                f"delete in {self.uri}",
                self.client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self._key(k)} for k in chunk], "Quiet": True},
            )


def open_store(uri: str, endpoint_url: str | None = None) -> ObjectStore:
    if uri.startswith("s3://"):
        return S3Store(uri, endpoint_url)
    if "://" in uri:
        raise SourceUnavailableError(
            f"unsupported landing URI {uri!r}: use a local folder or s3://bucket/prefix"
        )
    return LocalStore(uri)
