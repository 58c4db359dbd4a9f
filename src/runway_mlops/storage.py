"""Object access for landing zones: a local folder or an ``s3://bucket/prefix`` via boto3.

Both expose the same small interface (list, read, write), so the file source and the
seeder run the same code path against a folder in the demo and against S3 (MinIO, AWS,
or moto's server in tests). S3 credentials come from the environment / boto3's usual
chain (``AWS_ACCESS_KEY_ID`` …), never from configuration files; the endpoint comes
from the ``s3_endpoint_url`` setting.

Nothing outside a store's root is read. A key is a ``/``-separated path below the root
with no empty, ``.`` or ``..`` segment (S3 keys may hold such segments; they are refused,
since copying them into a folder would land outside it). A local store never follows a
symbolic link, to a file or to a folder: :meth:`LocalStore.scan` reports links instead of
listing what they point to, and :meth:`LocalStore.read` opens every path segment with
``O_NOFOLLOW``, so a link swapped in after the listing is refused too.
"""

from __future__ import annotations

import errno
import os
import stat
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runway_mlops.errors import SourceDataError, SourceUnavailableError

#: Why a symbolic link is never read.
LINK_REASON = "is a symbolic link: links are never followed (deliver the file itself)"


@dataclass(frozen=True)
class StoredObject:
    key: str  # relative to the store root, "/"-separated
    size: int


@dataclass(frozen=True)
class Refused:
    """An entry under a prefix that is never read, and why (a link, an unsafe key …)."""

    key: str
    reason: str


@dataclass
class Listing:
    """Everything under a prefix, sorted by key: what may be read and what may not."""

    #: Regular, visible objects: safe to read.
    objects: list[StoredObject] = field(default_factory=list)
    #: Names starting with a dot (writers' temporary files) and S3 folder markers.
    hidden: list[str] = field(default_factory=list)
    #: Entries that are never read: links, special files, keys escaping the root.
    refused: list[Refused] = field(default_factory=list)


def unsafe_key(key: str) -> str | None:
    """Why ``key`` cannot name an object below a store's root, or None if it can."""
    if key.startswith("/"):
        return "is an absolute path: keys are relative to the landing root"
    parts = key.split("/")
    if ".." in parts:
        return "has a '..' segment: it would name a path outside the landing root"
    if "." in parts or "" in parts:
        return "has an empty or '.' path segment: keys are plain relative paths"
    return None


def _checked(key: str, where: str) -> list[str]:
    problem = unsafe_key(key)
    if problem is not None:
        raise SourceDataError(f"{where} {problem}")
    return key.split("/")


class ObjectStore(Protocol):
    uri: str

    def list(self, prefix: str) -> list[StoredObject]: ...

    def scan(self, prefix: str) -> Listing: ...

    def read(self, key: str) -> bytes: ...

    def write(self, key: str, data: bytes) -> None: ...

    def read_optional(self, key: str) -> bytes | None: ...

    def describe(self, key: str) -> str: ...


class LocalStore:
    """A folder; writes land under a temporary name and are renamed into place.

    Symbolic links below the root are never followed (module docstring); the root
    itself may be a link.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def describe(self, key: str) -> str:
        return str(self.root / key)

    def scan(self, prefix: str) -> Listing:
        """Every entry under ``prefix`` without following a link; nothing is opened."""
        listing = Listing()
        prefix = prefix.strip("/")
        parts = _checked(prefix, self.describe(prefix)) if prefix else []
        base = self.root
        for depth, part in enumerate(parts, start=1):
            base = base / part
            try:
                mode = os.lstat(base).st_mode
            except FileNotFoundError:
                return listing
            if stat.S_ISLNK(mode):
                listing.refused.append(Refused("/".join(parts[:depth]), LINK_REASON))
                return listing
            if not stat.S_ISDIR(mode):
                return listing

        def unlistable(error: OSError) -> None:
            key = Path(error.filename).relative_to(self.root).as_posix()
            listing.refused.append(Refused(key, f"cannot be listed: {error.strerror}"))

        for folder, subfolders, names in os.walk(base, onerror=unlistable, followlinks=False):
            here = Path(folder)
            keep = []
            for name in sorted(subfolders):
                key = (here / name).relative_to(self.root).as_posix()
                if name.startswith("."):
                    listing.hidden.append(key + "/")
                elif os.path.islink(here / name):
                    listing.refused.append(Refused(key, LINK_REASON))
                else:
                    keep.append(name)
            subfolders[:] = keep
            for name in names:
                key = (here / name).relative_to(self.root).as_posix()
                if name.startswith("."):
                    listing.hidden.append(key)
                    continue
                try:
                    info = os.lstat(here / name)
                except FileNotFoundError:  # removed while listing
                    continue
                if stat.S_ISLNK(info.st_mode):
                    listing.refused.append(Refused(key, LINK_REASON))
                elif stat.S_ISREG(info.st_mode):
                    listing.objects.append(StoredObject(key, info.st_size))
                else:
                    listing.refused.append(
                        Refused(key, "is not a regular file (a pipe, socket or device)")
                    )
        listing.objects.sort(key=lambda o: o.key)
        listing.hidden.sort()
        listing.refused.sort(key=lambda r: r.key)
        return listing

    def list(self, prefix: str) -> list[StoredObject]:
        """The regular, visible files under ``prefix`` (links are left out: see scan)."""
        return self.scan(prefix).objects

    def _open(self, key: str) -> int:
        """A read-only descriptor of ``key``, opened one segment at a time, no link followed."""
        parts = _checked(key, self.describe(key))
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        folder = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for depth, part in enumerate(parts, start=1):
                last = depth == len(parts)
                try:
                    # O_NONBLOCK: opening a named pipe must not wait for a writer.
                    opened = os.open(
                        part, flags | (os.O_NONBLOCK if last else os.O_DIRECTORY), dir_fd=folder
                    )
                except OSError as exc:
                    here = "/".join(parts[:depth])
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(
                        self.root / here
                    ):
                        raise SourceDataError(f"{self.describe(here)} {LINK_REASON}") from None
                    raise
                os.close(folder)
                folder = opened
        except BaseException:
            os.close(folder)
            raise
        if not stat.S_ISREG(os.fstat(folder).st_mode):
            os.close(folder)
            raise SourceDataError(f"{self.describe(key)} is not a regular file")
        return folder

    def read(self, key: str) -> bytes:
        with os.fdopen(self._open(key), "rb") as handle:
            return handle.read()

    def read_optional(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is no such object."""
        try:
            return self.read(key)
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        _checked(key, self.describe(key))
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

    def scan(self, prefix: str) -> Listing:
        """Every object under ``prefix``; keys that could escape a folder are refused."""
        full = self._key(prefix).rstrip("/") + "/"
        strip = f"{self.prefix}/" if self.prefix else ""
        listing = Listing()
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(
                f"list of {self.describe(prefix)}", self.client.list_objects_v2, **kwargs
            )
            for item in page.get("Contents", []):
                key = item["Key"].removeprefix(strip)
                if key.endswith("/"):  # a "folder" made by a console: no data
                    listing.hidden.append(key)
                elif key.rsplit("/", 1)[-1].startswith("."):
                    listing.hidden.append(key)
                elif (problem := unsafe_key(key)) is not None:
                    listing.refused.append(Refused(key, problem))
                else:
                    listing.objects.append(StoredObject(key, int(item["Size"])))
            if not page.get("IsTruncated"):
                listing.objects.sort(key=lambda o: o.key)
                return listing
            token = page["NextContinuationToken"]

    def list(self, prefix: str) -> list[StoredObject]:
        """The visible objects under ``prefix`` with safe keys (see scan)."""
        return self.scan(prefix).objects

    def read(self, key: str) -> bytes:
        _checked(key, self.describe(key))
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
