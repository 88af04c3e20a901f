"""Evidence files: checked by content, stored under their sha256 in the
evidence store (workflow/filestore.py: a folder outside the web root, or a
bucket), which never shows a half-written file under a real name; the storage
check and its clean-up over every store.

One file serves every evidence row with the same content, so a file may be
removed only when no committed row references it. Every transaction that
stores, references or removes the file of one content first takes that
content's lock (``content_lock``), held until it commits or rolls back; the
removal (``discard_unreferenced``) runs in a transaction of its own, after
the one that stopped referencing the file, and decides under the lock. A
request that loses a race therefore waits for the winner's commit and then
sees its row, instead of deleting the file the winner has just committed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import io
import os
import re
import time
import zipfile

from flask import current_app
from sqlalchemy import exists, select, text

from models import Evidence, ReportArchive
from workflow.extensions import db
from workflow.filestore import PARTIAL_PREFIX, evidence_store, report_store, staging_store
from workflow.text import clean_line

# extension -> (mime type, content check)
ALLOWED = {
    ".pdf": "application/pdf",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xls": "application/vnd.ms-excel",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
KIND_NAMES = "PDF、Word（.doc/.docx）、Excel（.xls/.xlsx）或图片（.png/.jpg/.gif/.webp）"


class FileRefused(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class StorageFailed(Exception):
    """The disk refused the write (full, read-only, no permission)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def storage_failure_message(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "服务器存储空间已满，文件未保存，其他内容也未改动。请联系办公室管理员清理磁盘后重试。"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "服务器存储目录不可写，文件未保存，其他内容也未改动。请联系办公室管理员。"
    return "服务器保存文件时出错，文件未保存，其他内容也未改动。请稍后重试或联系办公室管理员。"


def _ooxml_kind(data: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, ValueError):
        return None
    if "[Content_Types].xml" not in names:
        return None
    if any(n.startswith("word/") for n in names):
        return ".docx"
    if any(n.startswith("xl/") for n in names):
        return ".xlsx"
    return None


def sniff(data: bytes) -> set[str]:
    """The extensions the bytes really are (by magic numbers, not by name)."""
    if data.startswith(b"%PDF-"):
        return {".pdf"}
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return {".png"}
    if data.startswith(b"\xff\xd8\xff"):
        return {".jpg", ".jpeg"}
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return {".gif"}
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return {".webp"}
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):   # OLE2: legacy Word and Excel
        return {".doc", ".xls"}
    if data.startswith(b"PK\x03\x04"):
        kind = _ooxml_kind(data)
        return {kind} if kind else set()
    return set()


def check(data: bytes, filename: str) -> str:
    """Return the mime type, or raise FileRefused with a Chinese reason."""
    limit_mb = current_app.config["MAX_UPLOAD_MB"]
    if not data:
        raise FileRefused("文件是空的，请重新选择。")
    if len(data) > limit_mb * 1024 * 1024:
        raise FileRefused(f"文件超过 {limit_mb} MB 的上限，请压缩或拆分后再上传。")
    ext = os.path.splitext(filename)[1].lower()
    if ext not in ALLOWED:
        raise FileRefused(f"不支持的文件类型“{ext or '无扩展名'}”，只接受{KIND_NAMES}。")
    if ext not in sniff(data):
        raise FileRefused(f"文件内容与扩展名“{ext}”不符（可能是其他格式改了名字），未保存。")
    return ALLOWED[ext]


MAX_FILENAME = 200


def clean_filename(filename: str) -> str:
    """Keep the user's (Chinese) name for display; drop any path, control and
    bidi characters. A long name is shortened in its stem, so that its
    extension (which decides the type) survives. Never used to build a path:
    files are stored by hash."""
    name = clean_line(filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '<>:"|?*').strip()
    if len(name) > MAX_FILENAME:
        stem, ext = os.path.splitext(name)
        if not 1 < len(ext) <= 16:
            ext = ""
        name = stem[:MAX_FILENAME - len(ext)].rstrip() + ext
    return name or "文件"


_SHA_NAME = re.compile(r"[0-9a-f]{64}")


def evidence_key(sha256: str) -> str:
    if not _SHA_NAME.fullmatch(sha256 or ""):
        raise ValueError("not a sha256")
    return f"{sha256[:2]}/{sha256}"


def report_key(sha256: str) -> str:
    """An archived report's key in the report store (workflow/reports/archive.py writes it)."""
    return evidence_key(sha256) + ".pdf"


def path_for(sha256: str) -> str:
    """Where the evidence file of this content is, in words: a path in the default
    folder store (tests and the operator's messages use it), an s3:// URL in a bucket."""
    return evidence_store().describe(evidence_key(sha256))


def file_present(sha256: str | None) -> bool:
    return bool(sha256) and evidence_store().exists(evidence_key(sha256))


def content_lock(sha256: str) -> None:
    """Serialise, until the current transaction ends, every transaction that
    stores, references or removes the file of this content.

    PostgreSQL: a transaction-scoped advisory lock keyed by the hash. SQLite:
    nothing to take — a writing transaction begins with BEGIN IMMEDIATE
    (workflow.app), so it is already the only writer; code outside a request
    that removes files must call ``write_transactions()`` first."""
    if db.session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(bytes.fromhex(sha256[:16]), "big", signed=True)
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _first_entry() -> str | None:
    # Plain SQL: a query of AuditEntry would chain this transaction's entries now (audit.py).
    return db.session.execute(text("SELECT hash FROM audit_entry WHERE seq = 1")).scalar()


def claim(store) -> None:
    """Make sure ``store`` is this deployment's before writing to or removing from it (raises
    StoreClaimed, an OSError, when another deployment's trail marked it)."""
    store.claim(_first_entry)


def store(data: bytes) -> tuple[str, bool]:
    """Store the bytes under the content lock; returns (sha256, created) —
    created False when the same content was already there. Raises
    StorageFailed (a Chinese message) when the disk refuses."""
    sha = hashlib.sha256(data).hexdigest()
    content_lock(sha)
    try:
        claim(evidence_store())
        return sha, evidence_store().put_once(evidence_key(sha), data)
    except OSError as exc:
        raise StorageFailed(storage_failure_message(exc)) from exc


def is_referenced(sha256: str) -> bool:
    return bool(db.session.scalar(select(exists().where(Evidence.content_sha256 == sha256))))


def discard_unreferenced(sha256: str) -> bool:
    """Remove the file of this content if no committed evidence row uses it.

    Call it after the transaction that stopped using the file has ended
    (rolled back, or committed a withdrawal): it runs and commits a
    transaction of its own. Returns whether a file was removed. Never raises
    for the file system: a file it cannot remove stays an orphan, which
    ``flask storage check --clean`` finds later."""
    if not sha256:
        return False
    try:
        content_lock(sha256)
        return not is_referenced(sha256) and remove_stored(evidence_store(), evidence_key(sha256))
    finally:
        # It wrote nothing: ending the transaction releases the lock.
        db.session.rollback()


def _discard_unreferenced_report(sha256: str, now: float) -> bool:
    """An archived PDF no committed archive entry names, past its grace time (a job stores its PDF
    before its entry commits), decided under the content's lock like evidence: a job committing
    the same bytes meanwhile keeps it (reports/archive.run takes the lock and puts it back if gone)."""
    key = report_key(sha256)
    try:
        content_lock(sha256)
        referenced = db.session.scalar(select(exists().where(ReportArchive.sha256 == sha256)))
        return (not referenced and report_store().age(key, now) > PARTIAL_GRACE_SECONDS
                and remove_stored(report_store(), key))
    finally:
        db.session.rollback()


# ---------------------------------------------------------------- pausing removals

def _lock_path() -> str:
    # In the instance folder, not among the stored files it protects.
    os.makedirs(current_app.instance_path, exist_ok=True)
    return os.path.join(current_app.instance_path, "storage-removals.lock")


# The PostgreSQL advisory lock a backup holds exclusively and each removal shares: with
# several hosts on one database (and one bucket), the flock below covers only its own host.
_REMOVALS_LOCK = 0x4C53_0003


def _on_postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def remove_stored(store, key: str) -> bool:
    """Remove one stored file unless removals are paused (a backup is being
    taken, on this host or, on PostgreSQL, on any); returns whether it was removed.
    On PostgreSQL it takes its share of the lock in the caller's transaction,
    released when that ends."""
    with open(_lock_path(), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return False   # a backup holds the files still; the orphan waits for the next clean-up
        try:
            if _on_postgresql() and not db.session.scalar(
                    text("SELECT pg_try_advisory_xact_lock_shared(:key)"), {"key": _REMOVALS_LOCK}):
                return False   # a backup on another host holds them
            return store.remove(key)   # one it cannot remove stays an orphan for the next clean-up
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def removals_paused():
    """No evidence or report file, nor a leftover the clean-up would remove, is removed while this
    is held, by any process on this machine, and on PostgreSQL by any host (a confirmed import's
    staged document goes regardless: backups never hold staged documents): a
    backup holds it from before its database snapshot until its last file is
    copied, so that every file the snapshot references is still there to copy."""
    with open(_lock_path(), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _on_postgresql():
                # In a transaction of a connection of its own (the backup's session commits and rolls
                # back meanwhile), ended however the backup ends: a transaction's lock never
                # outlives it, as a session's could on a connection handed back to the pool.
                with db.engine.connect() as conn:
                    # Idle in its transaction for the whole backup: a server's idle timeout must not end it.
                    conn.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _REMOVALS_LOCK})
                    try:
                        yield
                    finally:
                        conn.rollback()
            else:
                yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# ---------------------------------------------------------------- survey and clean-up

# Younger files may belong to a write still under way (a .partial- file being
# filled, a report rendered but not yet recorded, a document between review and
# confirm): the clean-up leaves them alone.
PARTIAL_GRACE_SECONDS = 3600
STAGING_GRACE_SECONDS = 24 * 3600


@dataclasses.dataclass
class Survey:
    """What ``flask storage check`` found. Files are named as their store
    describes them (a path in a folder, an s3:// URL in a bucket)."""
    evidence_files: int = 0
    report_files: int = 0
    missing_evidence: list[tuple[str, list[int]]] = dataclasses.field(default_factory=list)  # sha, evidence ids
    missing_reports: list[tuple[str, list[int]]] = dataclasses.field(default_factory=list)   # sha, archive ids
    damaged: list[str] = dataclasses.field(default_factory=list)       # content differs from its name
    orphaned_evidence: list[str] = dataclasses.field(default_factory=list)
    orphaned_reports: list[str] = dataclasses.field(default_factory=list)
    partial: list[str] = dataclasses.field(default_factory=list)
    staged: list[str] = dataclasses.field(default_factory=list)        # unconfirmed import documents
    # Each name above → its store and key, for ``clean``.
    located: dict[str, tuple[object, str]] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def healthy(self) -> bool:
        return not (self.missing_evidence or self.missing_reports or self.damaged)


def _hash_stored(store, key: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with contextlib.closing(store.open(key)) as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def survey(check_hashes: bool = True) -> Survey:
    """Compare the stored files with the rows that reference them."""
    result = Survey()
    evidence_refs: dict[str, list[int]] = {}
    for evidence_id, sha in db.session.execute(
            select(Evidence.id, Evidence.content_sha256).where(Evidence.content_sha256.is_not(None))):
        evidence_refs.setdefault(sha, []).append(evidence_id)
    report_refs: dict[str, list[int]] = {}
    for archive_id, sha in db.session.execute(
            select(ReportArchive.id, ReportArchive.sha256).where(ReportArchive.sha256.is_not(None))):
        report_refs.setdefault(sha, []).append(archive_id)
    db.session.rollback()   # nothing held while the stores are read

    result.evidence_files, result.missing_evidence = _compare(
        evidence_store(), lambda sha: f"{sha[:2]}/{sha}", evidence_refs, check_hashes, result, result.orphaned_evidence)
    result.report_files, result.missing_reports = _compare(
        report_store(), lambda sha: f"{sha[:2]}/{sha}.pdf", report_refs, check_hashes, result, result.orphaned_reports)

    staging = staging_store()
    for found in staging.walk():
        result.staged.append(_locate(result, staging, found.key))
    for name in ("orphaned_evidence", "orphaned_reports", "partial", "staged"):
        getattr(result, name).sort()
    return result


def _locate(result: Survey, store, key: str) -> str:
    described = store.describe(key)
    result.located[described] = (store, key)
    return described


def _compare(store, key_of_sha, refs: dict[str, list[int]], check_hashes: bool, result: Survey,
             orphaned: list[str]) -> tuple[int, list]:
    """Walk one store (evidence or reports): each file is referenced, orphaned
    (anything the app did not name so counts too) or partial; returns the
    number of referenced files and the references whose file is missing."""
    seen, referenced = set(), 0
    for found in store.walk():
        name = found.key.rsplit("/", 1)[-1]
        sha = name.removesuffix(".pdf")
        described = _locate(result, store, found.key)
        if name.startswith(PARTIAL_PREFIX):
            result.partial.append(described)
        elif _SHA_NAME.fullmatch(sha) and found.key == key_of_sha(sha):
            seen.add(sha)
            if sha in refs:
                referenced += 1
                if check_hashes and _hash_stored(store, found.key) != sha:
                    result.damaged.append(described)
            else:
                orphaned.append(described)
        else:
            orphaned.append(described)
    return referenced, sorted((sha, ids) for sha, ids in refs.items() if sha not in seen)


def clean(found: Survey, now: float | None = None) -> list[str]:
    """Remove what no row references: orphaned evidence (each decided again
    under its content lock, so that an upload committing meanwhile keeps its
    file), orphaned reports, partial files and unconfirmed import documents
    past their grace time. Never a referenced file. Returns what it removed."""
    now = time.time() if now is None else now
    removed = []
    claim(evidence_store())   # never remove from another deployment's store (raises StoreClaimed)
    claim(report_store())

    def old_enough(described: str, grace: float) -> bool:
        store, key = found.located[described]
        try:
            return store.age(key, now) > grace and remove_stored(store, key)
        finally:
            db.session.rollback()   # it wrote nothing: the removal's share of the backup lock goes

    for described in found.orphaned_evidence:
        _store, key = found.located[described]
        name = key.rsplit("/", 1)[-1]
        if _SHA_NAME.fullmatch(name) and key == evidence_key(name):
            if discard_unreferenced(name):
                removed.append(described)
        elif old_enough(described, PARTIAL_GRACE_SECONDS):
            removed.append(described)
    for described in found.orphaned_reports:
        _store, key = found.located[described]
        sha = key.rsplit("/", 1)[-1].removesuffix(".pdf")
        if _SHA_NAME.fullmatch(sha) and key == report_key(sha):
            if _discard_unreferenced_report(sha, now):
                removed.append(described)
        elif old_enough(described, PARTIAL_GRACE_SECONDS):
            removed.append(described)
    for described in found.partial:
        if old_enough(described, PARTIAL_GRACE_SECONDS):
            removed.append(described)
    for described in found.staged:
        if old_enough(described, STAGING_GRACE_SECONDS):
            removed.append(described)
    return removed
