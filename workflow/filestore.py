"""Where stored files live: a folder of this machine (the default) or a bucket
of an S3-compatible object store (FILE_STORE=s3), shared by several hosts.

Three stores: evidence files (``ab/<sha>``) and archived reports
(``ab/<sha>.pdf``), both content-addressed (a key always holds the same bytes),
and the compilations uploaded for import between review and confirm
(``<sha>.bin`` with its name beside it, ``<sha>.name``), which the review and
the confirm may read on different hosts. What the app decides about them — which file may
be removed, under which lock, what a survey finds — stays in workflow.storage
and workflow.reports.archive; a store only keeps bytes under keys:

- ``put_once(key, data)`` writes unless the key exists, never leaving a half-
  written object under the key (a folder: a temporary file renamed; S3: one
  PUT, refused by the server if the key exists);
- ``replace(key, data)`` writes whatever was there (only the staged name);
- ``open(key)`` a binary reader, FileNotFoundError when the key is absent;
- ``remove(key)`` whether it removed (never raises: an object it cannot remove
  stays an orphan for ``flask storage check --clean``);
- ``walk()`` every object below the store, with its age, whatever its name;
- ``describe(key)`` where it is, in words for the operator (a path, an s3:// URL).

Errors of the store itself (a full disk, an unreachable server, refused
credentials) are OSError, as a disk's are, so every caller says them in words.
"""
from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

from flask import current_app

PARTIAL_PREFIX = ".partial-"


@dataclass(frozen=True)
class Stored:
    key: str
    modified: float       # seconds since the epoch


class StoreUnavailable(OSError):
    """The object store refused or could not be reached (said like a disk error)."""

    def __init__(self, message: str):
        super().__init__(errno.EIO, message)


class StoreClaimed(StoreUnavailable):
    """The bucket's prefix is marked as another deployment's (another audit trail)."""

    def __init__(self, marker: str):
        super().__init__(f"文件存储 {marker} 属于另一套系统（审计链不同）：本系统不在其中存取或删除文件。"
                         "请检查 S3_BUCKET 和 S3_PREFIX：每套系统须使用自己的前缀。")


def write_once(target: str, data: bytes) -> bool:
    """Write ``data`` to ``target`` unless it exists, through a temporary file
    in the same folder and a rename, so that a crash never leaves a
    half-written file under the real name. Returns whether it wrote."""
    if os.path.exists(target):
        return False
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=PARTIAL_PREFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return True


class LocalStore:
    """A folder outside the web root: a fixed one, or the one a function names
    when asked (a setting such as UPLOAD_FOLDER, read on each use, stays the one truth)."""

    place = "目录"

    def __init__(self, root: str | Callable[[], str]):
        self._root = root

    @property
    def root(self) -> str:
        return self._root() if callable(self._root) else self._root

    def path(self, key: str) -> str:
        return os.path.join(self.root, *key.split("/"))

    local_path = path

    def describe(self, key: str | None = None) -> str:
        return self.root if key is None else self.path(key)

    def exists(self, key: str) -> bool:
        return os.path.isfile(self.path(key))

    def put_once(self, key: str, data: bytes) -> bool:
        return write_once(self.path(key), data)

    def replace(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key`` whatever was there (a note beside a file, not content-addressed)."""
        target = self.path(key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=PARTIAL_PREFIX)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    def open(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def remove(self, key: str) -> bool:
        try:
            os.remove(self.path(key))
            return True
        except OSError:   # already gone, or not removable
            return False

    def age(self, key: str, now: float) -> float:
        try:
            return now - os.stat(self.path(key)).st_mtime
        except FileNotFoundError:
            return 0.0

    def walk(self) -> Iterator[Stored]:
        if not os.path.isdir(self.root):
            return
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                path = os.path.join(folder, name)
                try:
                    modified = os.stat(path).st_mtime
                except FileNotFoundError:
                    continue
                yield Stored(os.path.relpath(path, self.root).replace(os.sep, "/"), modified)

    def is_empty(self) -> bool:
        return next(iter(self.walk()), None) is None

    def claim(self, trail: Callable[[], str | None]) -> None:
        """A folder is this instance's by its configuration alone (see S3Store.claim)."""


class S3Store:
    """The objects below ``prefix`` in one bucket of an S3-compatible server."""

    place = "对象存储"

    def __init__(self, client, bucket: str, prefix: str, marker: str | None = None):
        self.client, self.bucket, self.prefix = client, bucket, prefix
        # The deployment's mark (claim), beside the stores of one S3_PREFIX, not inside any.
        self.marker = marker
        self._bucket_seen = False
        self._claimed: str | None = None

    def _key(self, key: str) -> str:
        return self.prefix + key

    local_path = staticmethod(lambda key: None)

    def describe(self, key: str | None = None) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key or ''}"

    def _call(self, what: str, method, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        if not self._bucket_seen:
            # Once per process: a HEAD of a key in a bucket that is not there is a bare 404 too,
            # and a misspelt S3_BUCKET must not read as "every file is lost".
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                raise StoreUnavailable(f"对象存储{what}失败：存储桶 {self.bucket} 无法访问"
                                       f"（{exc.response.get('Error', {}).get('Code', exc)}）") from exc
            except BotoCoreError as exc:
                raise StoreUnavailable(f"对象存储{what}失败：{exc}") from exc
            self._bucket_seen = True
        try:
            return method(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(errno.ENOENT, "对象不存在", self.describe(kwargs.get("Key", "")[
                    len(self.prefix):])) from None
            raise StoreUnavailable(f"对象存储{what}失败：{exc.response.get('Error', {}).get('Code', exc)}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"对象存储{what}失败：{exc}") from exc

    def exists(self, key: str) -> bool:
        try:
            self._call("查询", self.client.head_object, Key=self._key(key))
            return True
        except FileNotFoundError:
            return False

    def put_once(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
        try:
            # If-None-Match: the server refuses to replace an existing key (two hosts storing
            # the same content at once both succeed, one of them without writing).
            self._call("写入", self.client.put_object, Key=self._key(key), Body=data, IfNoneMatch="*",
                       ChecksumSHA256=checksum)
        except StoreUnavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") in (
                    "PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def replace(self, key: str, data: bytes) -> None:
        self._call("写入", self.client.put_object, Key=self._key(key), Body=data)

    def open(self, key: str) -> BinaryIO:
        return _Body(self._call("读取", self.client.get_object, Key=self._key(key))["Body"])

    def remove(self, key: str) -> bool:
        # S3 answers a DELETE of a missing key as a success: ask first, to say whether it removed.
        try:
            if not self.exists(key):
                return False
            self._call("删除", self.client.delete_object, Key=self._key(key))
            return True
        except OSError:
            return False

    def age(self, key: str, now: float) -> float:
        try:
            found = self._call("查询", self.client.head_object, Key=self._key(key))
        except OSError:
            return 0.0
        return now - found["LastModified"].timestamp()

    def walk(self) -> Iterator[Stored]:
        token = None
        while True:
            page = self._call("列举", self.client.list_objects_v2, Prefix=self.prefix,
                              **({"ContinuationToken": token} if token else {}))
            for found in page.get("Contents", ()):
                yield Stored(found["Key"][len(self.prefix):], found["LastModified"].timestamp())
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def is_empty(self) -> bool:
        page = self._call("列举", self.client.list_objects_v2, Prefix=self.prefix, MaxKeys=1)
        return not page.get("Contents")

    def claim(self, trail: Callable[[], str | None]) -> None:
        """The prefix is this deployment's: marked with its audit trail's first entry on first use,
        refused (StoreClaimed) when another trail marked it — two deployments under one prefix would
        take each other's files for unreferenced ones and remove them."""
        if self.marker is None or self._claimed is not None:
            return
        trail = trail()           # once per process: the first entry's hash never changes
        if trail is None:         # an empty trail marks nothing yet
            return
        from botocore.exceptions import BotoCoreError, ClientError

        body = json.dumps({"trail": trail}).encode()
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.marker, Body=body, IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise StoreUnavailable(f"对象存储写入失败：{exc.response.get('Error', {}).get('Code', exc)}") from exc
            found = _Body(self._call("读取", self.client.get_object, Key=self.marker)["Body"]).read()
            try:
                marked = json.loads(found).get("trail")
            except (ValueError, AttributeError):
                marked = None
            if marked != trail:
                raise StoreClaimed(f"s3://{self.bucket}/{self.marker}") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"对象存储写入失败：{exc}") from exc
        self._claimed = trail


class _Body:
    """An object's body, read in chunks; its failures half-way (a broken connection, a checksum
    that does not match) are the store's (StoreUnavailable), not botocore's own errors."""

    def __init__(self, body):
        self.body = body

    def read(self, size: int = -1) -> bytes:
        from botocore.exceptions import BotoCoreError

        try:
            return self.body.read(None if size is None or size < 0 else size)
        except BotoCoreError as exc:
            raise StoreUnavailable(f"对象存储读取失败：{exc}") from exc

    def close(self) -> None:
        self.body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------- the app's stores

STORE_KINDS = ("local", "s3")


def s3_client(config):
    import boto3
    from botocore.config import Config as BotoConfig

    return boto3.client(
        "s3", endpoint_url=config.get("S3_ENDPOINT_URL") or None, region_name=config.get("S3_REGION") or "us-east-1",
        aws_access_key_id=config.get("S3_ACCESS_KEY_ID") or None,
        aws_secret_access_key=config.get("S3_SECRET_ACCESS_KEY") or None,
        # Short: an upload waits for its PUT under the content's lock, inside its transaction.
        config=BotoConfig(s3={"addressing_style": "path"}, connect_timeout=3, read_timeout=15,
                          retries={"max_attempts": 2, "mode": "standard"}))


def init_app(app) -> None:
    """Make the stores the configuration names (checked at start-up)."""
    kind = (app.config.get("FILE_STORE") or "local").lower()
    if kind not in STORE_KINDS:
        raise RuntimeError(f"FILE_STORE 只能是 local 或 s3，而不是 {kind!r}")
    if kind == "local":
        stores = {"evidence": LocalStore(lambda: current_app.config["UPLOAD_FOLDER"]),
                  "reports": LocalStore(lambda: current_app.config["REPORT_FOLDER"]),
                  "staging": LocalStore(lambda: os.path.join(current_app.instance_path, "staging"))}
    else:
        if not app.config.get("S3_BUCKET"):
            raise RuntimeError("FILE_STORE=s3 需要设置 S3_BUCKET（以及 S3_ENDPOINT_URL 和访问密钥）")
        client = s3_client(app.config)
        prefix = (app.config.get("S3_PREFIX") or "").strip("/")
        prefix = prefix + "/" if prefix else ""
        bucket, marker = app.config["S3_BUCKET"], prefix + "deployment.json"
        stores = {"evidence": S3Store(client, bucket, prefix + "uploads/", marker),
                  "reports": S3Store(client, bucket, prefix + "reports/", marker),
                  "staging": S3Store(client, bucket, prefix + "staging/")}
    app.extensions["luoshi.stores"] = stores


def evidence_store():
    return current_app.extensions["luoshi.stores"]["evidence"]


def report_store():
    return current_app.extensions["luoshi.stores"]["reports"]


def staging_store():
    return current_app.extensions["luoshi.stores"]["staging"]
