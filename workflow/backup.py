"""Backups that restore: the database and the files it references, in one
archive that proves its own integrity (docs/backup.md).

Copying ``instance/luoshi.sqlite`` while the app runs gives a stale or torn
file: committed transactions may still sit in the ``-wal`` file, and a
checkpoint may rewrite pages while the copy reads them. So the snapshot is
taken by the database itself — SQLite's online backup API, PostgreSQL's
``pg_dump`` on an exported snapshot — and the facts recorded with it (audit
head, row counts, the files to copy) are read from that same snapshot.

The archive is an uncompressed tar (evidence is mostly PDF and images,
already compressed; the PostgreSQL dump compresses itself):

    database/luoshi.sqlite | database/luoshi.pgdump
    uploads/<sha[:2]>/<sha>           every evidence file the snapshot references
    reports/<sha[:2]>/<sha>.pdf       every archived report the snapshot references
    manifest.json                     what, when, from where; sha256 of every member above
    manifest.json.sha256              sha256 of manifest.json (``sha256sum -c`` format)

``verify_archive`` refuses an archive in which any byte differs from what was
written: member contents by their hashes, the manifest by its own hash, tar
headers by their checksums, padding and trailer by being zero.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from flask import current_app
from sqlalchemy import text
from sqlalchemy.engine import make_url

from workflow import audit, storage
from workflow.extensions import db
from workflow.filestore import evidence_store, report_store
from workflow.reports import archive
from workflow.sqlite import write_transactions
from workflow.timeutil import format_local, utcnow

FORMAT = "luoshi-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_SUM = "manifest.json.sha256"
DB_MEMBER = {"sqlite": "database/luoshi.sqlite", "postgresql": "database/luoshi.pgdump"}
BACKEND_LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
RESTORED_ACTION = "backup_restored"
CLI_USERNAME = "cli"
SHA_RE = re.compile(r"[0-9a-f]{64}")
TABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MEMBER_RE = re.compile(r"(uploads/([0-9a-f]{2})/([0-9a-f]{64}))|(reports/([0-9a-f]{2})/([0-9a-f]{64})\.pdf)")
CHUNK = 1024 * 1024
BLOCK = tarfile.BLOCKSIZE
# libpq reads these from the environment; the URL's query may carry them.
PG_QUERY_ENV = {"host": "PGHOST", "port": "PGPORT", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT",
                "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY", "connect_timeout": "PGCONNECT_TIMEOUT",
                "application_name": "PGAPPNAME", "options": "PGOPTIONS",
                "target_session_attrs": "PGTARGETSESSIONATTRS"}


class BackupError(Exception):
    """A backup or restore that cannot be done; .message is for the user (Chinese)."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.problems = problems or []


# ---------------------------------------------------------------- facts of a snapshot

@dataclass
class Snapshot:
    """What the snapshot says about itself, read from the snapshot."""
    revision: str | None
    audit_seq: int
    audit_hash: str
    row_counts: dict[str, int]
    evidence: list[str]
    reports: list[str]
    invalid: list[dict]


def _read_snapshot(rows, tables: list[str]) -> Snapshot:
    """``rows(sql)`` runs one query in the snapshot and returns its rows."""
    counts = {}
    for name in sorted(tables):
        if TABLE_RE.fullmatch(name):
            counts[name] = int(rows(f'SELECT count(*) FROM "{name}"')[0][0])
    revision = None
    if "alembic_version" in counts:
        found = rows("SELECT version_num FROM alembic_version")
        revision = found[0][0] if found else None
    seq, head = 0, audit.GENESIS
    if "audit_head" in counts:
        found = rows("SELECT seq, hash FROM audit_head WHERE id = 1")
        if found:
            seq, head = int(found[0][0]), found[0][1]
    invalid: list[dict] = []

    def hashes(kind: str, sql: str) -> list[str]:
        good = []
        for (value,) in rows(sql):
            # A hash is used to build a path: anything else is reported, never followed.
            if SHA_RE.fullmatch(value or ""):
                good.append(value)
            else:
                invalid.append({"kind": kind, "sha256": str(value)[:80], "reason": "invalid"})
        return sorted(good)

    evidence = hashes("evidence", "SELECT DISTINCT content_sha256 FROM evidence WHERE content_sha256 IS NOT NULL") \
        if "evidence" in counts else []
    reports = hashes("report", "SELECT DISTINCT sha256 FROM report_archive WHERE sha256 IS NOT NULL") \
        if "report_archive" in counts else []
    return Snapshot(revision, seq, head, counts, evidence, reports, invalid)


# ---------------------------------------------------------------- PostgreSQL tools

@dataclass
class PgTarget:
    dbname: str
    env: dict[str, str]
    server_major: int
    server_version: str


def pg_environment(url) -> tuple[str, dict[str, str]]:
    """(database name, environment) for pg_dump/pg_restore: the connection
    settings, the password included, go through libpq's environment
    variables, never the command line (where ``ps`` would show them)."""
    url = make_url(url) if isinstance(url, str) else url
    env = dict(os.environ)
    for key, value in url.query.items():
        if key in PG_QUERY_ENV:
            env[PG_QUERY_ENV[key]] = value if isinstance(value, str) else value[0]
    if url.host:
        env["PGHOST"] = url.host
    if url.port:
        env["PGPORT"] = str(url.port)
    if url.username:
        env["PGUSER"] = url.username
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    env["PGDATABASE"] = url.database or ""
    return url.database or "", env


def pg_target() -> PgTarget:
    """This app's PostgreSQL database, and its server's version."""
    dbname, env = pg_environment(db.engine.url)
    with db.engine.connect() as conn:
        number = int(conn.exec_driver_sql("SHOW server_version_num").scalar())
        version = conn.exec_driver_sql("SHOW server_version").scalar()
    return PgTarget(dbname, env, number // 10000, str(version).split()[0])


def _tool_version(path: str) -> tuple[int, str] | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\)\s+(\d+)(?:\.(\d+))?", out)
    return (int(match.group(1)), match.group(0).strip(") ")) if match else None


def pg_tool(name: str, server_major: int) -> tuple[str, str]:
    """The pg_dump/pg_restore to use and its version: one at least as new as
    the server (an older pg_dump refuses a newer server). Looks in
    $LUOSHI_PG_BIN, Debian's /usr/lib/postgresql/<server major>/bin, then PATH."""
    candidates = []
    if os.environ.get("LUOSHI_PG_BIN"):
        candidates.append(os.path.join(os.environ["LUOSHI_PG_BIN"], name))
    candidates.append(f"/usr/lib/postgresql/{server_major}/bin/{name}")
    found = shutil.which(name)
    if found:
        candidates.append(found)
    seen = []
    for path in candidates:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            continue
        version = _tool_version(path)
        if version is None:
            continue
        if version[0] >= server_major:
            return path, version[1]
        seen.append(f"{path}（{version[1]}）")
    also = f"找到的版本过旧：{'、'.join(seen)}。" if seen else ""
    raise BackupError(f"找不到可用的 {name}（需要 PostgreSQL {server_major} 或更新版本的客户端工具）。{also}"
                      f"请安装 postgresql-client-{server_major}（scripts/setup.sh --test 会安装 PostgreSQL），"
                      f"或用环境变量 LUOSHI_PG_BIN 指向其所在目录。")


def _run_tool(args: list[str], env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=6 * 3600)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BackupError(f"{what}失败：无法运行 {os.path.basename(args[0])}（{exc}）。") from None
    if done.returncode != 0:
        detail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-8:])
        raise BackupError(f"{what}失败（{os.path.basename(args[0])} 退出码 {done.returncode}）：\n{detail}")


# ---------------------------------------------------------------- create

@dataclass
class Created:
    path: Path
    manifest: dict
    size: int
    sha256: str

    @property
    def missing(self) -> list[dict]:
        return self.manifest["missing"]


def _sqlite_path() -> str:
    url = db.engine.url
    if not url.database or url.database == ":memory:":
        raise BackupError("内存中的 SQLite 数据库无法备份或恢复。")
    return os.path.abspath(url.database)


def _snapshot_sqlite(staging: str) -> tuple[str, Snapshot, datetime, dict]:
    source_path = _sqlite_path()
    if not os.path.isfile(source_path):
        raise BackupError(f"数据库文件不存在：{source_path}")
    target = os.path.join(staging, "luoshi.sqlite")
    # Read-only: the backup must never create or change the live database.
    source = sqlite3.connect(f"file:{urllib.parse.quote(source_path)}?mode=ro", uri=True, timeout=60)
    copy = sqlite3.connect(target)
    try:
        return _sqlite_copy(source, copy, target)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite 快照失败：{exc}") from None
    finally:
        copy.close()
        source.close()


def _sqlite_copy(source, copy, target: str) -> tuple[str, Snapshot, datetime, dict]:
    """Copy source into copy and read the facts from the copy."""
    taken_at = utcnow()
    # One step (pages=-1): the whole copy is read inside one read
    # transaction, so it is the database as of one commit, while other
    # connections keep writing to the WAL.
    source.backup(copy, pages=-1)
    # A standalone file: no WAL to lose when it is copied about later.
    copy.execute("PRAGMA journal_mode=DELETE")
    check = copy.execute("PRAGMA integrity_check").fetchall()
    if check != [("ok",)]:
        raise BackupError("快照的完整性检查未通过：" + "; ".join(str(r[0]) for r in check[:5]))
    tables = [r[0] for r in copy.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    facts = _read_snapshot(lambda sql: copy.execute(sql).fetchall(), tables)
    tool = {"method": "sqlite3.Connection.backup", "sqlite_version": sqlite3.sqlite_version}
    return target, facts, taken_at, tool


def _snapshot_postgresql(staging: str) -> tuple[str, Snapshot, datetime, dict]:
    target = pg_target()
    pg_dump, version = pg_tool("pg_dump", target.server_major)
    out = os.path.join(staging, "luoshi.pgdump")
    conn = db.engine.connect().execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    try:
        with conn.begin():
            # pg_dump imports this transaction's snapshot, so the dump and the
            # facts read below (head, counts, the files to copy) are the same
            # moment. The transaction stays open until pg_dump is done.
            snapshot_id = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
            taken_at = conn.exec_driver_sql("SELECT now() AT TIME ZONE 'UTC'").scalar()
            tables = [r[0] for r in conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
            facts = _read_snapshot(lambda sql: conn.exec_driver_sql(sql).all(), tables)
            _run_tool([pg_dump, "--format=custom", "--no-password", f"--snapshot={snapshot_id}",
                       f"--file={out}", target.dbname], target.env, "pg_dump 导出")
    finally:
        conn.close()
    tool = {"method": "pg_dump --format=custom", "pg_dump_version": version,
            "server_version": target.server_version}
    return out, facts, taken_at, tool


class _Writer:
    """Adds members to the tar and remembers their hashes."""

    def __init__(self, tar: tarfile.TarFile, mtime: int):
        self.tar = tar
        self.mtime = mtime
        self.members: dict[str, dict] = {}

    def _info(self, name: str, size: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = self.mtime
        info.mode = 0o600
        return info

    def add_bytes(self, name: str, data: bytes) -> None:
        self.tar.addfile(self._info(name, len(data)), io.BytesIO(data))
        self.members[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}

    def add_file(self, name: str, path: str, expected: str | None = None) -> bool:
        """Add one file; with ``expected``, only if its content has that
        sha256 (returns False, adding nothing, when it has not)."""
        with open(path, "rb") as fh:
            return self._add_open(name, fh, path, expected)

    def add_stored(self, name: str, store, key: str, expected: str | None = None) -> bool:
        """Add one object of a file store (FileNotFoundError when it has none under ``key``):
        from its folder, or fetched once into a temporary file (a tar member's size comes first)."""
        path = store.local_path(key)
        if path is not None:
            return self.add_file(name, path, expected)
        with tempfile.TemporaryFile() as fh:
            with contextlib.closing(store.open(key)) as source:
                shutil.copyfileobj(source, fh, CHUNK)
            return self._add_open(name, fh, store.describe(key), expected)

    def _add_open(self, name: str, fh, label: str, expected: str | None) -> bool:
        fh.seek(0)
        size = os.fstat(fh.fileno()).st_size
        digest = hashlib.sha256()
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
        sha = digest.hexdigest()
        if expected is not None and sha != expected:
            return False
        fh.seek(0)
        reader = _HashingReader(fh)
        self.tar.addfile(self._info(name, size), reader)
        if reader.digest.hexdigest() != sha:   # changed under us: stored files never should
            raise BackupError(f"文件在备份过程中被改动：{label}")
        self.members[name] = {"sha256": sha, "size": size}
        return True


class _HashingReader:
    def __init__(self, fh):
        self.fh = fh
        self.digest = hashlib.sha256()

    def read(self, size=-1):
        data = self.fh.read(size)
        self.digest.update(data)
        return data


def _manifest_bytes(manifest: dict) -> tuple[bytes, bytes]:
    body = (json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")
    return body, f"{hashlib.sha256(body).hexdigest()}  {MANIFEST}\n".encode("ascii")


def create(path: Path) -> Created:
    """Write a backup archive to ``path`` (which must not exist yet). The
    archive is written under a temporary name in the same folder and renamed
    when complete, so ``path`` is either a whole archive or absent."""
    path = Path(path).absolute()
    if path.exists():
        raise BackupError(f"目标文件已存在：{path}。请换一个文件名（不会覆盖已有的备份）。")
    folder = path.parent
    if not folder.is_dir():
        raise BackupError(f"目标目录不存在：{folder}")
    backend = db.engine.dialect.name
    if backend not in DB_MEMBER:
        raise BackupError(f"不支持的数据库：{backend}")
    staging = tempfile.mkdtemp(dir=folder, prefix=".luoshi-backup-")
    fd, partial = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out:
            # From before the snapshot until the last file is in the archive, no
            # stored file is removed (by any process), so every file the
            # snapshot references is still there to copy.
            with storage.removals_paused():
                if backend == "sqlite":
                    dump, facts, taken_at, tool = _snapshot_sqlite(staging)
                else:
                    dump, facts, taken_at, tool = _snapshot_postgresql(staging)
                tar = tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT)
                writer = _Writer(tar, int(taken_at.replace(tzinfo=timezone.utc).timestamp()))
                writer.add_file(DB_MEMBER[backend], dump)
                os.remove(dump)
                missing = list(facts.invalid)
                for kind, hashes, member, store, key_of in (
                        ("evidence", facts.evidence, "uploads/{p}/{sha}", evidence_store(), storage.evidence_key),
                        ("report", facts.reports, "reports/{p}/{sha}.pdf", report_store(), archive.report_key)):
                    for sha in hashes:
                        key = key_of(sha)
                        name = member.format(p=sha[:2], sha=sha)
                        try:
                            if not writer.add_stored(name, store, key, expected=sha):
                                missing.append({"kind": kind, "sha256": sha, "reason": "damaged",
                                                "path": store.describe(key)})
                        except FileNotFoundError:
                            missing.append({"kind": kind, "sha256": sha, "reason": "missing",
                                            "path": store.describe(key)})
            manifest = {
                "format": FORMAT, "format_version": FORMAT_VERSION,
                "backend": backend, "tool": tool,
                "snapshot_at": taken_at.isoformat(timespec="microseconds") + "Z",
                "created_at": utcnow().isoformat(timespec="microseconds") + "Z",
                "alembic_revision": facts.revision,
                "audit_head": {"seq": facts.audit_seq, "hash": facts.audit_hash},
                "row_counts": facts.row_counts,
                "database_member": DB_MEMBER[backend],
                "evidence_files": sum(1 for n in writer.members if n.startswith("uploads/")),
                "report_files": sum(1 for n in writer.members if n.startswith("reports/")),
                "missing": missing,
                "members": writer.members,
            }
            body, checksum = _manifest_bytes(manifest)
            writer.add_bytes(MANIFEST, body)
            writer.add_bytes(MANIFEST_SUM, checksum)
            writer.members.pop(MANIFEST)
            writer.members.pop(MANIFEST_SUM)
            tar.close()
            out.flush()
            os.fsync(out.fileno())
        size = os.path.getsize(partial)
        sha = _file_sha256(partial)
        _publish(partial, path)
        _fsync_dir(folder)
    except BaseException as exc:
        if os.path.exists(partial):
            os.remove(partial)
        if isinstance(exc, OSError):
            raise BackupError(f"备份失败：读写文件出错（{_os_error(exc)}）。未写入 {path}，"
                              f"也没有留下不完整的备份文件。") from exc
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Created(path, manifest, size, sha)


def _publish(partial: str, path: Path) -> None:
    """Give the finished archive its name, never replacing a file that
    appeared there meanwhile: a hard link fails if the name exists (a rename
    would overwrite it). Where links are not supported, check, then rename."""
    try:
        os.link(partial, path)
    except FileExistsError:
        raise BackupError(f"目标文件已存在：{path}。请换一个文件名（不会覆盖已有的备份）。") from None
    except OSError:
        if path.exists():
            raise BackupError(f"目标文件已存在：{path}。请换一个文件名（不会覆盖已有的备份）。") from None
        os.replace(partial, path)
        return
    os.remove(partial)


def _os_error(exc: OSError) -> str:
    return f"{exc.strerror or exc}" + (f"：{exc.filename}" if exc.filename else "")


def _file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- verify

@dataclass
class Verified:
    path: Path
    manifest: dict
    size: int
    sha256: str
    offsets: dict[str, tuple[int, int]] = field(default_factory=dict)   # member -> (data offset, size)


def _damaged(problems: list[str]) -> BackupError:
    return BackupError(f"备份文件已损坏或被改动（{len(problems)} 处问题），拒绝使用。", problems)


def verify_archive(path: Path) -> Verified:
    """Check every byte of an archive; raise BackupError (with the problems
    found) unless it is exactly what ``create`` wrote."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"备份文件不存在：{path}")
    problems: list[str] = []
    size = path.stat().st_size
    with open(path, "rb") as fh:
        whole = _file_sha256(path)
        try:
            tar = tarfile.open(fileobj=fh, mode="r:", format=tarfile.USTAR_FORMAT)
            members = tar.getmembers()
        except (tarfile.TarError, OSError, UnicodeDecodeError) as exc:
            raise _damaged([f"不是可读的备份归档（tar）：{exc}"]) from None
        by_name: dict[str, tarfile.TarInfo] = {}
        for m in members:
            if m.name in by_name:
                problems.append(f"成员重复：{m.name}")
            by_name[m.name] = m
            if not m.isreg():
                problems.append(f"成员不是普通文件：{m.name}")
        manifest = _read_manifest(tar, by_name, problems)
        if manifest is None:
            raise _damaged(problems)
        listed = manifest.get("members") or {}
        for m in members:
            if m.name in (MANIFEST, MANIFEST_SUM) or not m.isreg():
                continue
            expected = listed.get(m.name)
            if expected is None:
                problems.append(f"清单中没有的成员：{m.name}")
                continue
            if not _member_name_ok(m.name, manifest):
                problems.append(f"成员名称不合规：{m.name}")
            if m.size != expected.get("size"):
                problems.append(f"成员大小不符：{m.name}")
                continue
            digest = hashlib.sha256()
            source = tar.extractfile(m)
            for chunk in iter(lambda: source.read(CHUNK), b""):
                digest.update(chunk)
            if digest.hexdigest() != expected.get("sha256"):
                problems.append(f"成员内容与清单中的 sha256 不符：{m.name}")
            match = MEMBER_RE.fullmatch(m.name)
            if match and digest.hexdigest() != (match.group(3) or match.group(6)):
                problems.append(f"文件内容与其名称（sha256）不符：{m.name}")
        for name in listed:
            if name not in by_name:
                problems.append(f"清单中的成员缺失：{name}")
        problems += _check_structure(fh, members, size)
    if problems:
        raise _damaged(problems)
    offsets = {m.name: (m.offset_data, m.size) for m in members}
    return Verified(path, manifest, size, whole, offsets)


def _read_manifest(tar, by_name, problems) -> dict | None:
    if MANIFEST not in by_name or MANIFEST_SUM not in by_name:
        problems.append("缺少清单 manifest.json 或其校验和 manifest.json.sha256（归档不完整或不是本系统的备份）")
        return None
    if not (by_name[MANIFEST].isreg() and by_name[MANIFEST_SUM].isreg()):
        return None
    body = tar.extractfile(by_name[MANIFEST]).read()
    checksum = tar.extractfile(by_name[MANIFEST_SUM]).read()
    if checksum != f"{hashlib.sha256(body).hexdigest()}  {MANIFEST}\n".encode("ascii"):
        problems.append("清单 manifest.json 与其校验和不符：清单被改动")
        return None
    try:
        manifest = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        problems.append("清单 manifest.json 不是有效的 JSON")
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        problems.append("不是本系统的备份（清单格式不符）")
        return None
    if manifest.get("format_version") != FORMAT_VERSION:
        problems.append(f"备份格式版本 {manifest.get('format_version')} 不受本程序支持")
        return None
    if manifest.get("backend") not in DB_MEMBER or manifest.get("database_member") != DB_MEMBER[manifest["backend"]]:
        problems.append("清单中的数据库类型无效")
        return None
    shapes = {"members": dict, "row_counts": dict, "audit_head": dict, "missing": list, "tool": dict,
              "snapshot_at": str, "created_at": str, "evidence_files": int, "report_files": int}
    if any(not isinstance(manifest.get(key), kind) for key, kind in shapes.items()) or not (
            isinstance(manifest["audit_head"].get("seq"), int) and isinstance(manifest["audit_head"].get("hash"), str)):
        problems.append("清单 manifest.json 缺少必需的内容")
        return None
    if manifest["database_member"] not in manifest["members"]:
        problems.append("清单中没有数据库文件")
        return None
    return manifest


def _member_name_ok(name: str, manifest: dict) -> bool:
    return name == manifest["database_member"] or MEMBER_RE.fullmatch(name) is not None


def _check_structure(fh, members, size) -> list[str]:
    """What the hashes do not cover: the checksum field of each header
    (tarfile reads it only up to its NUL), padding after each member, and the
    end-of-archive blocks must be exactly as tarfile writes them."""
    problems = []
    position = 0
    for m in members:
        if m.offset != position:
            problems.append(f"成员 {m.name} 之前有多余的内容")
        fh.seek(m.offset)
        header = fh.read(BLOCK)
        if header[148:156] != ("%06o\0 " % m.chksum).encode("ascii"):
            problems.append(f"成员 {m.name} 的头部校验和字段被改动")
        end = m.offset_data + m.size
        padded = m.offset_data + -(-m.size // BLOCK) * BLOCK
        fh.seek(end)
        if fh.read(padded - end).strip(b"\0"):
            problems.append(f"成员 {m.name} 之后的填充被改动")
        position = padded
    fh.seek(position)
    trailer_ok = size - position >= 2 * BLOCK
    for chunk in iter(lambda: fh.read(CHUNK), b""):
        if chunk.strip(b"\0"):
            trailer_ok = False
            break
    if not trailer_ok:
        problems.append("归档结尾（tar 结束块）被改动或截断")
    return problems


# ---------------------------------------------------------------- restore

@dataclass
class Restored:
    verified: Verified
    evidence_files: int
    report_files: int
    row_counts: dict[str, int]
    audit_entries: int
    audit_problems: list
    audit_entry_seq: int | None      # the backup_restored entry, if written
    schema_current: bool
    count_mismatches: list[str]

    @property
    def manifest(self) -> dict:
        return self.verified.manifest


def _data_rows(scalar, tables: list[str]) -> int:
    """Rows that are data: not the schema version, and not the audit head a
    fresh schema starts with (seq 0, written by the first migration)."""
    rows = 0
    for t in tables:
        if t == "alembic_version" or not TABLE_RE.fullmatch(t):
            continue
        where = " WHERE seq <> 0" if t == "audit_head" else ""
        rows += int(scalar(f'SELECT count(*) FROM "{t}"{where}'))
    return rows


def _sqlite_state(path: str) -> tuple[bool, int]:
    """(the file exists, rows of data in it)."""
    if not os.path.exists(path):
        return False, 0
    conn = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=ro", uri=True, timeout=30)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        rows = _data_rows(lambda sql: conn.execute(sql).fetchone()[0], tables)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"目标数据库文件 {path} 无法读取（{exc}），拒绝覆盖。") from None
    finally:
        conn.close()
    return True, rows


def _pg_state() -> tuple[int, int]:
    """(relations and functions in the target's schema, rows of data in its tables)."""
    with db.engine.connect() as conn:
        objects = conn.exec_driver_sql(
            "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f')) "
            "     + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "        WHERE n.nspname = current_schema())").scalar()
        tables = [r[0] for r in conn.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
        rows = _data_rows(lambda sql: conn.exec_driver_sql(sql).scalar(), tables)
    return int(objects), int(rows)


def check_target_empty(backend: str) -> None:
    """Refuse (BackupError, Chinese) unless the instance holds nothing a
    restore could overwrite or mix with."""
    problems = []
    if backend == "sqlite":
        exists, rows = _sqlite_state(_sqlite_path())
        if rows:
            problems.append(f"目标数据库 {_sqlite_path()} 已有数据（{rows} 行）")
    else:
        objects, rows = _pg_state()
        name = db.engine.url.database
        if rows:
            problems.append(f"目标数据库 {name} 已有数据（{rows} 行）")
        elif objects:
            problems.append(f"目标数据库 {name} 已有表或函数（{objects} 个，可能运行过 flask db upgrade）；"
                            f"PostgreSQL 上请恢复到一个新建的空数据库（createdb），不要先建表")
    for label, store in (("佐证材料", evidence_store()), ("报告", report_store())):
        try:
            files = 0 if store.is_empty() else sum(1 for _ in store.walk())
        except OSError as exc:
            problems.append(f"{label}{store.place} {store.describe()} 无法访问（{exc.strerror or exc}）")
            continue
        if files:
            problems.append(f"{label}{store.place} {store.describe()} 中已有 {files} 个文件")
    if problems:
        raise BackupError("只能恢复到空的实例，已拒绝，未写入任何内容：" + "；".join(problems) + "。"
                          "请换用新的数据库和空的文件存储（UPLOAD_FOLDER、REPORT_FOLDER，或 S3_BUCKET/S3_PREFIX）后再恢复。", problems)


def _known_revisions() -> tuple[set[str], set[str]]:
    # Here: alembic.script takes about a second to import, and only a restore needs it.
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(current_app.extensions["migrate"].directory)
    return {s.revision for s in scripts.walk_revisions()}, set(scripts.get_heads())


def _copy_member(fh, offset: int, size: int, target: str, expected: str) -> None:
    """Copy one member to ``target`` through a temporary file, checking its
    hash again (the archive could change after it was verified)."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".partial-")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            fh.seek(offset)
            left = size
            while left:
                chunk = fh.read(min(CHUNK, left))
                if not chunk:
                    raise BackupError("备份文件在恢复过程中被截断。")
                digest.update(chunk)
                out.write(chunk)
                left -= len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != expected:
            raise BackupError(f"恢复时文件内容与清单不符（备份文件在校验后被改动）：{os.path.basename(target)}")
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _copy_member_to_store(fh, offset: int, size: int, store, key: str, expected: str) -> None:
    """One stored file back into its store: into its folder as ``_copy_member`` does, or into
    a temporary file, checked, then put (an object store never shows a half-written object)."""
    path = store.local_path(key)
    if path is not None:
        _copy_member(fh, offset, size, path, expected)
        return
    with tempfile.TemporaryDirectory(dir=current_app.instance_path, prefix=".luoshi-restore-") as staging:
        staged = os.path.join(staging, "member")
        _copy_member(fh, offset, size, staged, expected)
        with open(staged, "rb") as member:
            store.put_once(key, member.read())


def _write_restore(verified: Verified, backend: str, target: PgTarget | None, pg_restore: str | None) -> tuple[int, int]:
    """The writing half of a restore: the database, then the files. Returns
    (evidence files, report files) restored."""
    manifest = verified.manifest
    members = manifest["members"]
    db_name = manifest["database_member"]
    with open(verified.path, "rb") as fh:
        offset, size = verified.offsets[db_name]
        if backend == "sqlite":
            live = _sqlite_path()
            os.makedirs(os.path.dirname(live), exist_ok=True)
            staged = os.path.join(os.path.dirname(live), f".{os.path.basename(live)}.restoring")
            _copy_member(fh, offset, size, staged, members[db_name]["sha256"])
            try:
                # An empty database file left in place (schema only) is
                # replaced with its WAL, so no stale WAL frame meets the new file.
                for suffix in ("-wal", "-shm"):
                    if os.path.exists(live + suffix):
                        os.remove(live + suffix)
                os.replace(staged, live)
                _fsync_dir(os.path.dirname(live))
            finally:
                if os.path.exists(staged):
                    os.remove(staged)
        else:
            # In the instance folder, not beside the archive (backup media may be read-only).
            staging = tempfile.mkdtemp(prefix=".luoshi-restore-", dir=current_app.instance_path)
            try:
                dump = os.path.join(staging, "luoshi.pgdump")
                _copy_member(fh, offset, size, dump, members[db_name]["sha256"])
                # One transaction: a failed restore leaves the database as empty as it was.
                _run_tool([pg_restore, "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges",
                           "--no-password", f"--dbname={target.dbname}", dump], target.env, "pg_restore 恢复")
            finally:
                shutil.rmtree(staging, ignore_errors=True)

        evidence = reports = 0
        for name in sorted(members):
            match = MEMBER_RE.fullmatch(name)
            if not match:
                continue
            if match.group(1):
                store, key, evidence = evidence_store(), storage.evidence_key(match.group(3)), evidence + 1
            else:
                store, key, reports = report_store(), archive.report_key(match.group(6)), reports + 1
            offset, size = verified.offsets[name]
            _copy_member_to_store(fh, offset, size, store, key, members[name]["sha256"])
    return evidence, reports


def restore(path: Path) -> Restored:
    """Restore an archive into this (empty) instance: check it all first,
    then the database, then the files, then the audit chain."""
    verified = verify_archive(path)
    manifest = verified.manifest
    backend = db.engine.dialect.name
    if manifest["backend"] != backend:
        raise BackupError(f"备份来自 {BACKEND_LABELS[manifest['backend']]}，当前实例使用 "
                          f"{BACKEND_LABELS.get(backend, backend)}：不能跨数据库恢复，已拒绝，未写入任何内容。")
    known, heads = _known_revisions()
    revision = manifest.get("alembic_revision")
    if revision not in known:
        raise BackupError(f"备份的数据库结构版本 {revision} 不是本程序所知的版本（备份可能来自更新的程序），"
                          f"已拒绝，未写入任何内容。")
    check_target_empty(backend)
    if backend == "postgresql":   # find the tool before writing anything
        target = pg_target()
        pg_restore, _version = pg_tool("pg_restore", target.server_major)
    db.session.remove()
    db.engine.dispose()

    try:
        evidence, reports = _write_restore(verified, backend, target if backend == "postgresql" else None,
                                           pg_restore if backend == "postgresql" else None)
    except OSError as exc:
        raise BackupError(f"恢复中断：读写文件出错（{_os_error(exc)}）。目标实例可能已写入一部分"
                          f"（数据库或部分文件）：请清空它（新的数据库、空的文件目录或存储桶前缀）后重新恢复。") from exc

    db.session.remove()
    db.engine.dispose()
    problems = audit.verify()
    tables = [r[0] for r in db.session.execute(text(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'" if backend == "sqlite"
        else "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))]
    facts = _read_snapshot(lambda sql: db.session.execute(text(sql)).all(), tables)
    db.session.rollback()
    mismatches = [f"{t}：备份时 {n} 行，恢复后 {facts.row_counts.get(t)} 行"
                  for t, n in manifest["row_counts"].items() if facts.row_counts.get(t) != n]
    head = manifest["audit_head"]
    if (facts.audit_seq, facts.audit_hash) != (head["seq"], head["hash"]):
        problems.append(audit.Problem(facts.audit_seq, None,
                                      f"恢复后的审计链头（第 {facts.audit_seq} 条，{facts.audit_hash}）"
                                      f"与备份清单（第 {head['seq']} 条，{head['hash']}）不符"))
    schema_current = revision in heads
    entry_seq = None
    # The restore itself goes into the chain, as its next entry, so that the
    # audit log shows that (and from which moment) the data was restored.
    # Not on a broken chain or an old schema (flask db upgrade comes first).
    if not problems and not mismatches and schema_current:
        write_transactions(True)
        try:
            entry = audit.append(RESTORED_ACTION, username=CLI_USERNAME, details={
                "archive": os.path.basename(str(verified.path)), "archive_sha256": verified.sha256,
                "backend": backend, "snapshot_at": manifest["snapshot_at"], "created_at": manifest["created_at"],
                "audit_head": head, "evidence_files": evidence, "report_files": reports,
                "missing": len(manifest["missing"])})
            db.session.commit()
            entry_seq = entry.seq
        finally:
            write_transactions(False)
    count = db.session.scalar(text("SELECT count(*) FROM audit_entry"))
    db.session.rollback()
    return Restored(verified, evidence, reports, facts.row_counts, int(count or 0), problems, entry_seq,
                    schema_current, mismatches)


# ---------------------------------------------------------------- describing

def parse_time(value: str) -> datetime:
    """A manifest time ("…Z", UTC) as naive UTC, as the app stores times."""
    return datetime.fromisoformat(value.removesuffix("Z"))


def local_time(value: str, suffix: str = "（北京时间）") -> str:
    return format_local(parse_time(value), "%Y-%m-%d %H:%M:%S") + suffix


def age(value: str) -> str:
    seconds = max(0, int((utcnow() - parse_time(value)).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days} 天 {hours} 小时前"
    if hours:
        return f"{hours} 小时 {rest // 60} 分钟前"
    return f"{rest // 60} 分钟前" if rest >= 60 else "不到 1 分钟前"


MISSING_REASONS = {"missing": "文件不存在", "damaged": "文件内容与其 sha256 不符", "invalid": "数据库中的 sha256 无效"}
KIND_LABELS = {"evidence": "佐证材料", "report": "报告"}


def describe_manifest(manifest: dict) -> list[str]:
    tool = manifest["tool"]
    if manifest["backend"] == "sqlite":
        how = f"SQLite 在线备份 API（SQLite {tool.get('sqlite_version')}）"
    else:
        how = f"PostgreSQL {tool.get('server_version')}，pg_dump {tool.get('pg_dump_version')} 自定义格式"
    head = manifest["audit_head"]
    counts = manifest["row_counts"]
    shown = "、".join(f"{t} {n}" for t, n in counts.items() if n and t != "alembic_version")
    return [
        f"  快照时间：{local_time(manifest['snapshot_at'])}，{age(manifest['snapshot_at'])}",
        f"  数据库：{how}，结构版本 {manifest.get('alembic_revision')}",
        f"  审计链头（快照时）：第 {head['seq']} 条，哈希 {head['hash']}",
        f"  文件：佐证材料 {manifest['evidence_files']} 个，报告 {manifest['report_files']} 个",
        f"  行数：{shown or '（空）'}",
    ]


def describe_missing(manifest: dict) -> list[str]:
    return [f"✗ 警告：{KIND_LABELS.get(m['kind'], m['kind'])}文件未能备份（{MISSING_REASONS.get(m['reason'], m['reason'])}）："
            f"sha256 {m['sha256']}" + (f"，应在 {m['path']}" if m.get("path") else "")
            for m in manifest["missing"]]
