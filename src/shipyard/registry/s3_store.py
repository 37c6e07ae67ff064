"""An artifact store in an S3 bucket (any S3 API: AWS, MinIO, Ceph, moto), with a local cache.

Layout under ``s3://bucket/prefix``::

    sha256/ab/abcdef...   one object per distinct content, named by its sha256

The endpoint comes from the standard ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) and the
credentials and region from the standard AWS chain; nothing here reads them itself.

Writes hash the file first, ask the bucket (HEAD) whether that content is already there, and
upload only when it is not (multipart above ``MULTIPART_THRESHOLD``). The registry writes
every blob before the row that names it commits, so a crash leaves at most an unreferenced
object, which ``shipyard gc`` removes. Reads download once into a local folder of blobs (the
cache) and re-hash the bytes on every read: a tampered object or a tampered cache file is
refused with an error naming it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

from shipyard.errors import IntegrityError, MissingDependencyError, StorageError
from shipyard.registry.artifacts import (
    CHUNK,
    BlobInfo,
    ProgressCallback,
    StoredBlob,
    check_digest,
    missing,
    no_progress,
    sha256_file,
)
from shipyard.registry.folder_store import FolderArtifactStore

if TYPE_CHECKING:
    from botocore.client import BaseClient

MULTIPART_THRESHOLD = 64 * 1024 * 1024
DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ("bucket", "some/prefix")."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise StorageError(f"the artifact URL {url!r} names no bucket: use s3://bucket/prefix")
    return bucket, prefix.strip("/")


class S3ArtifactStore:
    """An ``ArtifactStore`` of immutable objects in a bucket, read through a local cache."""

    def __init__(
        self,
        url: str,
        cache_dir: Path,
        *,
        client: BaseClient | None = None,
        multipart_threshold: int = MULTIPART_THRESHOLD,
    ) -> None:
        self.url = url.rstrip("/")
        self.multipart_threshold = multipart_threshold
        self.bucket, self.prefix = parse_s3_url(url)
        self.cache = FolderArtifactStore(cache_dir)
        self._client = client if client is not None else _new_client()
        self._endpoint = str(self._client.meta.endpoint_url)

    # Naming ---------------------------------------------------------------------------

    def key(self, digest: str) -> str:
        path = f"sha256/{digest[:2]}/{digest}"
        return f"{self.prefix}/{path}" if self.prefix else path

    def location(self, digest: str) -> str:
        return f"s3://{self.bucket}/{self.key(digest)}"

    # Writing --------------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self.key(digest))
        except Exception as exc:
            if _error_code(exc) in _NOT_FOUND:
                return False
            self._fail("look up", exc, digest)
        return True

    def put_file(self, source: Path, progress: ProgressCallback = no_progress) -> StoredBlob:
        digest = sha256_file(source)
        size = source.stat().st_size
        if self.exists(digest):
            self._refresh(digest)
            progress(size)
            return StoredBlob(digest, size, created=False)
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_threshold,
            use_threads=False,
        )
        try:
            self._client.upload_file(
                str(source), self.bucket, self.key(digest), Config=config, Callback=progress
            )
        except Exception as exc:
            self._fail("upload", exc, digest)
        return StoredBlob(digest, size, created=True)

    def put_bytes(self, data: bytes) -> StoredBlob:
        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            self._refresh(digest)
            return StoredBlob(digest, len(data), created=False)
        try:
            self._client.put_object(Bucket=self.bucket, Key=self.key(digest), Body=data)
        except Exception as exc:
            self._fail("upload", exc, digest)
        return StoredBlob(digest, len(data), created=True)

    def _refresh(self, digest: str) -> None:
        """Renew a reused object's modification time (a copy onto itself), so that a
        collection running now leaves it to the registration about to name it."""
        key = self.key(digest)
        try:
            self._client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": key},
                MetadataDirective="REPLACE",
            )
        except Exception as exc:
            self._fail("refresh", exc, digest)

    def remove(self, digests: Iterable[str]) -> None:
        doomed = list(digests)
        for start in range(0, len(doomed), DELETE_BATCH):
            batch = [{"Key": self.key(d)} for d in doomed[start : start + DELETE_BATCH]]
            try:
                self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except Exception as exc:
                self._fail("delete", exc)
        self.cache.remove(doomed)

    def list_blobs(self) -> Iterator[BlobInfo]:
        prefix = f"{self.prefix}/sha256/" if self.prefix else "sha256/"
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for entry in page.get("Contents", ()):
                    digest = entry["Key"].rsplit("/", 1)[-1]
                    modified: datetime = entry["LastModified"]
                    yield BlobInfo(digest, int(entry["Size"]), modified)
        except Exception as exc:
            self._fail("list", exc)

    # Reading --------------------------------------------------------------------------

    def read_verified(self, digest: str, name: str) -> bytes:
        if not self.cache.exists(digest):
            self._download(digest, name)
        # Re-hashed on every read, cached or not: the cache is a disk that can be changed too.
        return self.cache.read_verified(digest, name)

    def _download(self, digest: str, name: str) -> None:
        body = self._get(digest, name)
        hasher = hashlib.sha256()

        def copy(out: BinaryIO) -> None:
            while chunk := body.read(CHUNK):
                hasher.update(chunk)
                out.write(chunk)

        def matches() -> None:  # an object that does not hash to its name never enters the cache
            check_digest(hasher.hexdigest(), digest, name, self.location(digest))

        try:
            self.cache.write(copy, digest, matches)
        except (IntegrityError, StorageError):
            raise
        except Exception as exc:
            self._fail("download", exc, digest)
        finally:
            body.close()

    def verify(self, digest: str, name: str, progress: ProgressCallback = no_progress) -> None:
        """Re-hash the object in the bucket itself (not the cache)."""
        body = self._get(digest, name)
        hasher = hashlib.sha256()
        try:
            while chunk := body.read(CHUNK):
                hasher.update(chunk)
                progress(len(chunk))
        except Exception as exc:
            self._fail("download", exc, digest)
        finally:
            body.close()
        check_digest(hasher.hexdigest(), digest, name, self.location(digest))

    def _get(self, digest: str, name: str) -> Any:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self.key(digest))
        except Exception as exc:
            if _error_code(exc) in _NOT_FOUND:
                raise missing(name, self.location(digest)) from None
            self._fail("download", exc, digest)
        return response["Body"]

    # Errors ---------------------------------------------------------------------------

    def _fail(self, action: str, exc: Exception, digest: str | None = None) -> NoReturn:
        """A StorageError that says what was tried, where, and what the bucket answered."""
        target = self.location(digest) if digest else f"s3://{self.bucket}/{self.prefix}"
        raise StorageError(
            f"could not {action} {target} (endpoint {self._endpoint}): {_explain(exc)}"
        ) from exc


def _new_client() -> BaseClient:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise MissingDependencyError(
            "an s3:// artifact URL needs boto3: pip install 'shipyard[s3]'"
        ) from None
    # Few, quick retries: a registry call should fail in seconds, not minutes, when the
    # endpoint is down; each failure names the endpoint.
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60
    )
    try:
        return boto3.client("s3", config=config)
    except Exception as exc:
        raise StorageError(f"cannot configure the S3 client: {_explain(exc)}") from exc


def _error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def _explain(exc: Exception) -> str:
    code = _error_code(exc)
    if code == "NoSuchBucket":
        return "the bucket does not exist"
    if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"}:
        return f"the credentials were refused ({code})"
    name = type(exc).__name__
    if name == "NoCredentialsError":
        return (
            "no AWS credentials found (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, ~/.aws/credentials or an instance role)"
        )
    if name in {"EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"}:
        return f"the endpoint cannot be reached ({exc})"
    return f"{name}: {exc}"
