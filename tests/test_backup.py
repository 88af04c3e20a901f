"""flask backup create | verify | restore, on the test database (SQLite or
PostgreSQL): a backup taken while writers commit restores into a fresh empty
instance whose audit chain, reports and evidence files all check out; a
non-empty target and a damaged archive are refused with nothing written.

The PostgreSQL run needs pg_dump and pg_restore (scripts/setup.sh --test):
without them the backup fails, and so do these tests — they never skip.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from tests.conftest import make_app
from tests.helpers import log_in, unit_user
from workflow import audit, backup
from workflow.extensions import db

AS_OF = "2022-06-30"


@pytest.fixture
def db_template():
    return "activity"   # the seed plan with demo activity: real evidence files


# ---------------------------------------------------------------- helpers

@pytest.fixture
def fresh(databases, tmp_path):
    """Makes empty instances: a new SQLite file, or a new PostgreSQL database
    created through the test admin connection (no tables at all)."""
    made = []

    def make(name: str):
        folder = tmp_path / name
        folder.mkdir()
        url = databases.new_empty(folder)
        app = make_app(url, folder)
        made.append((app, url))
        return app

    yield make
    for app, url in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        databases.drop(url)


def invoke(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output   # click 8.2+: stdout and stderr, interleaved


def files_under(folder) -> dict[str, str]:
    """Relative path -> sha256 of every file below ``folder``."""
    found = {}
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as fh:
                found[os.path.relpath(path, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return found


def database_state(app) -> dict:
    """Every table's row count (an absent database or schema: no tables)."""
    with app.app_context():
        url = db.engine.url
        if url.get_backend_name() == "sqlite" and not os.path.exists(url.database):
            return {}
        tables = db.inspect(db.engine).get_table_names()
        counts = {t: db.session.scalar(text(f'SELECT count(*) FROM "{t}"')) for t in tables}
        db.session.remove()
    return counts


def instance_state(app) -> tuple:
    return (database_state(app), files_under(app.config["UPLOAD_FOLDER"]),
            files_under(app.config["REPORT_FOLDER"]),
            os.path.exists(app.config["UPLOAD_FOLDER"]), os.path.exists(app.config["REPORT_FOLDER"]))


def generate_report(app) -> None:
    from models import Item

    with app.app_context():
        number = db.session.scalar(select(Item.number).order_by(Item.id).limit(1))
        db.session.remove()
    code, out = invoke(app, "report", "generate", "--kind", "item", "--item", number, "--as-of", AS_OF,
                       "--out", str(Path(app.instance_path) / "item.pdf"))
    assert code == 0, out


def open_parts(app, n: int) -> list[tuple[int, int]]:
    """(part id, its unit's staff user id) of n parts that accept evidence."""
    from models import TaskPart
    from workflow import services
    from workflow.sqlite import write_transactions

    with app.app_context():
        write_transactions(True)
        parts = [p for p in db.session.scalars(select(TaskPart).order_by(TaskPart.id))
                 if p.state in ("planned", "in_progress")][:n]
        assert len(parts) == n
        jobs = []
        for part in parts:
            staff = unit_user(part.unit_id, "staff")
            if part.state == "planned":
                services.start_part(part, staff)
            jobs.append((part.id, staff.id))
        db.session.commit()
        db.session.remove()
        write_transactions(False)
    return jobs


class Load:
    """Writers that commit through the services on their own threads, each
    with its own app context and session, until stopped: each adds a new
    evidence file (new content), a text and a progress note to its own part."""

    def __init__(self, app, jobs: list[tuple[int, int]]):
        self.app = app
        self.jobs = jobs
        self.stop = threading.Event()
        self.commits = 0
        self.errors: list = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i, *job), daemon=True)
                        for i, job in enumerate(self.jobs)]

    def _run(self, index: int, part_id: int, user_id: int) -> None:
        from models import TaskPart, User
        from workflow import services
        from workflow.sqlite import write_transactions
        from workflow.demo_activity import make_png

        try:
            with self.app.app_context():
                write_transactions(True)
                round_ = 0
                while not self.stop.is_set():
                    round_ += 1
                    part, user = db.session.get(TaskPart, part_id), db.session.get(User, user_id)
                    data = make_png(900_000 + index * 10_000 + round_)
                    services.add_file_evidence(part, user, data, f"现场照片{index}-{round_}.png", "现场照片")
                    services.add_text_evidence(part, user, f"第{round_}轮：已走访企业{round_ + 3}家")
                    services.record_progress(part, user, min(90, round_), f"第{round_}轮推进")
                    db.session.commit()
                    db.session.remove()
                    with self.lock:
                        self.commits += 1
        except BaseException as exc:   # reported by the test
            self.errors.append(exc)

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def wait_for(self, commits: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.commits < commits:
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, f"load made {self.commits} commits, not {commits}"
            time.sleep(0.01)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(120)
        assert not self.errors, self.errors


class InFlight:
    """A unit's text evidence, flushed and its audit entry chained (as a commit
    begins by doing) but not committed until ``commit()``: on SQLite it holds
    the write lock meanwhile (BEGIN IMMEDIATE), on PostgreSQL the audit head's
    row lock — the other writers queue behind it, as they would behind a slow
    commit."""

    def __init__(self, app, part_id: int, user_id: int):
        self.flushed, self.release, self.done = threading.Event(), threading.Event(), threading.Event()
        self.seq = None
        self.errors: list = []
        self.thread = threading.Thread(target=self._run, args=(app, part_id, user_id), daemon=True)
        self.thread.start()
        assert self.flushed.wait(60), self.errors

    def _run(self, app, part_id, user_id):
        from models import AuditEntry, TaskPart, User
        from workflow import services
        from workflow.sqlite import write_transactions

        try:
            with app.app_context():
                write_transactions(True)
                part, user = db.session.get(TaskPart, part_id), db.session.get(User, user_id)
                services.add_text_evidence(part, user, "备份进行时尚未提交的材料")
                audit.chain_pending()
                self.seq = db.session.scalar(select(func.max(AuditEntry.seq)))
                self.flushed.set()
                self.release.wait(120)
                db.session.commit()
                db.session.remove()
        except BaseException as exc:
            self.errors.append(exc)
            self.flushed.set()
        finally:
            self.done.set()

    def commit(self) -> None:
        self.release.set()
        assert self.done.wait(120) and not self.errors, self.errors


def withdraw_pending_file(app, evidence_id: int) -> bool:
    """Withdraw a pending evidence file as its unit would, then try to remove
    the file it no longer references; returns whether the file was removed."""
    from models import Evidence, User
    from workflow import services, storage
    from workflow.sqlite import write_transactions

    with app.app_context():
        write_transactions(True)
        evidence = db.session.get(Evidence, evidence_id)
        sha = evidence.content_sha256
        user = db.session.get(User, evidence.uploaded_by_id)
        services.remove_pending_evidence(evidence, user)
        db.session.commit()
        removed = storage.discard_unreferenced(sha)
        db.session.remove()
        write_transactions(False)
    return removed


# ---------------------------------------------------------------- the main story

def test_backup_under_load_restores_into_a_fresh_instance(app, fresh, tmp_path, monkeypatch):
    from models import AuditEntry, Evidence, ReportArchive, TaskPart, User
    from workflow import storage
    from workflow.reports import archive

    generate_report(app)
    with app.app_context():
        # The played demo's rounds brought their 调度通报 too: every stored report file.
        report_files = db.session.scalar(select(func.count(func.distinct(ReportArchive.sha256)))
                                         .where(ReportArchive.sha256.is_not(None)))
        db.session.remove()
    assert report_files >= 2
    *writers, (spare_part, spare_user) = open_parts(app, 3)
    # A pending file the snapshot will reference; it is withdrawn while the
    # backup is still copying files, and its removal must wait.
    with app.app_context():
        from workflow import services
        from workflow.sqlite import write_transactions
        from workflow.demo_activity import make_pdf

        write_transactions(True)
        part, user = db.session.get(TaskPart, spare_part), db.session.get(User, spare_user)
        pending = services.add_file_evidence(part, user, make_pdf("Evidence withdrawn during the backup"), "待撤回.pdf")
        db.session.commit()
        pending_id, pending_sha = pending.id, pending.content_sha256
        db.session.remove()
        write_transactions(False)
    load = Load(app, writers)
    load.start()
    load.wait_for(3)
    # A writer in the middle of its transaction when the snapshot is taken:
    # the backup neither waits for it nor sees its uncommitted rows.
    in_flight = InFlight(app, spare_part, spare_user)

    during = {}
    original = backup._Writer.add_file

    def copying(self, name, path, expected=None):
        # Once, between the snapshot and the last file copied: the writers go
        # on committing, and the pending file is withdrawn.
        if name.startswith("uploads/") and not during:
            in_flight.commit()
            during["commits_before"] = load.commits
            remover = threading.Thread(target=lambda: during.update(removed=withdraw_pending_file(app, pending_id)))
            remover.start()
            remover.join(60)
            load.wait_for(load.commits + 2)
            during["commits_after"] = load.commits
        return original(self, name, path, expected)

    monkeypatch.setattr(backup._Writer, "add_file", copying)
    target = tmp_path / "备份" / "luoshi-backup.tar"
    target.parent.mkdir()
    started = time.monotonic()
    code, out = invoke(app, "backup", "create", str(target))
    create_seconds = time.monotonic() - started
    monkeypatch.undo()
    load.wait_for(load.commits + 2)
    load.finish()
    assert code == 0, out
    assert "已创建备份" in out and "审计链头（快照时）" in out and "✗" not in out
    assert during["commits_after"] >= during["commits_before"] + 2
    assert during["removed"] is False                       # paused while the backup held the files
    assert os.path.exists(os.path.join(app.config["UPLOAD_FOLDER"], pending_sha[:2], pending_sha))
    assert sorted(os.listdir(target.parent)) == ["luoshi-backup.tar"]   # no temporary left behind

    verified = backup.verify_archive(target)
    manifest = verified.manifest
    with app.app_context():
        final_seq = db.session.scalar(select(func.max(AuditEntry.seq)))
        source_counts = {t: db.session.scalar(text(f'SELECT count(*) FROM "{t}"')) for t in manifest["row_counts"]}
        head_entry = db.session.scalar(select(AuditEntry).where(AuditEntry.seq == manifest["audit_head"]["seq"]))
        assert head_entry.hash == manifest["audit_head"]["hash"]
        db.session.remove()
    # The snapshot is one moment inside the load: writes before it are in,
    # writes after it (during the file copy and later) are not.
    assert 0 < manifest["audit_head"]["seq"] < final_seq
    assert manifest["row_counts"]["evidence"] < source_counts["evidence"]
    assert f"uploads/{pending_sha[:2]}/{pending_sha}" in manifest["members"]
    assert in_flight.seq > manifest["audit_head"]["seq"]      # committed after the snapshot: not in it
    assert manifest["backend"] == db_backend(app) and manifest["missing"] == []
    assert manifest["report_files"] == report_files and manifest["evidence_files"] > 10
    assert manifest["alembic_revision"]

    restored = fresh("restored")
    started = time.monotonic()
    code, out = invoke(restored, "backup", "restore", str(target))
    restore_seconds = time.monotonic() - started
    assert code == 0, out
    head = manifest["audit_head"]
    assert "已从备份恢复" in out and f"第 {head['seq']} 条" in out and head["hash"] in out
    assert backup.local_time(manifest["snapshot_at"]) in out
    print(f"\nbackup create {create_seconds:.2f}s, restore {restore_seconds:.2f}s, "
          f"{verified.size} bytes, {len(manifest['members'])} members")

    code, out = invoke(restored, "audit", "verify")
    assert code == 0, out

    with restored.app_context():
        # The chain as of the snapshot, then the restore's own entry.
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.seq == head["seq"]))
        assert entry.hash == head["hash"]
        last = db.session.scalar(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))
        assert (last.seq, last.action, last.prev_hash) == (head["seq"] + 1, "backup_restored", head["hash"])
        assert last.details["snapshot_at"] == manifest["snapshot_at"]
        assert last.details["audit_head"] == head and last.details["archive_sha256"] == verified.sha256
        counts = {t: db.session.scalar(text(f'SELECT count(*) FROM "{t}"')) for t in manifest["row_counts"]}
        assert counts == {**manifest["row_counts"], "audit_entry": manifest["row_counts"]["audit_entry"] + 1}

        reports = db.session.scalars(select(ReportArchive).where(ReportArchive.status == "done")).all()
        assert len(reports) == report_files
        pdfs = []
        for row in reports:
            pdf = archive.read_pdf(row)           # the file is there and matches its recorded hash
            out_file = tmp_path / f"restored-{row.id}.pdf"
            out_file.write_bytes(pdf)
            pdfs.append(out_file)

        files = db.session.scalars(select(Evidence).where(Evidence.kind == "file").order_by(Evidence.id)).all()
        assert len(files) > 10
        expected = {}
        for ev in files:
            path = storage.path_for(ev.content_sha256)
            with open(path, "rb") as fh:
                data = fh.read()
            assert hashlib.sha256(data).hexdigest() == ev.content_sha256 and len(data) == ev.size
            expected[ev.id] = data
        assert pending_id in expected
        assert db.session.scalar(select(func.count(Evidence.id)).where(Evidence.text == "备份进行时尚未提交的材料")) == 0
        db.session.remove()

    for pdf in pdfs:
        code, out = invoke(restored, "report", "verify", str(pdf))
        assert code == 0, out
    client = log_in(restored.test_client(), "office")
    for evidence_id, data in expected.items():
        response = client.get(f"/evidence/{evidence_id}/download")
        assert response.status_code == 200, evidence_id
        assert response.data == data


def db_backend(app) -> str:
    with app.app_context():
        return db.engine.dialect.name


# ---------------------------------------------------------------- refusals

def test_restore_refuses_a_non_empty_target_with_nothing_written(app, fresh, tmp_path):
    target = tmp_path / "b.tar"
    code, out = invoke(app, "backup", "create", str(target))
    assert code == 0, out

    before = instance_state(app)
    code, out = invoke(app, "backup", "restore", str(target))
    assert code == 1 and "只能恢复到空的实例" in out and "已有数据" in out, out
    assert instance_state(app) == before

    # An empty database, but a file in the upload folder.
    other = fresh("stray-upload")
    os.makedirs(other.config["UPLOAD_FOLDER"])
    Path(other.config["UPLOAD_FOLDER"], "旧文件.pdf").write_bytes(b"%PDF-1.4 old")
    before = instance_state(other)
    code, out = invoke(other, "backup", "restore", str(target))
    assert code == 1 and "佐证材料目录" in out and "已有 1 个文件" in out, out
    assert instance_state(other) == before and before[0] == {}

    # A schema without rows is refused on PostgreSQL (pg_restore wants a bare
    # database) and replaced on SQLite (the file is swapped whole).
    migrated = fresh("migrated")
    code, out = invoke(migrated, "db", "upgrade")
    assert code == 0, out
    if db_backend(migrated) == "postgresql":
        before = instance_state(migrated)
        code, out = invoke(migrated, "backup", "restore", str(target))
        assert code == 1 and "已有表或函数" in out and "createdb" in out, out
        assert instance_state(migrated) == before
    else:
        code, out = invoke(migrated, "backup", "restore", str(target))
        assert code == 0, out
        code, out = invoke(migrated, "audit", "verify")
        assert code == 0, out


def flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1:]


def test_any_flipped_byte_is_refused_and_restore_writes_nothing(app, fresh, tmp_path):
    target = tmp_path / "b.tar"
    code, out = invoke(app, "backup", "create", str(target))
    assert code == 0, out
    code, out = invoke(app, "backup", "verify", str(target))
    assert code == 0 and "备份完整" in out, out

    data = target.read_bytes()
    with tarfile.open(target) as tar:
        members = tar.getmembers()
    offsets = set(range(0, len(data), max(1, len(data) // 40))) | {len(data) - 1}
    files = [m for m in members if m.name.startswith(("uploads/", "reports/"))]
    # Every part of a member (header, its checksum field, data, padding) for
    # the database, a few files and both manifest members.
    for m in [members[0], *files[:2], files[-1], *members[-2:]]:
        offsets |= {m.offset, m.offset + 100, m.offset + 154, m.offset + 155, m.offset_data,
                    m.offset_data + m.size // 2, m.offset_data + m.size - 1}
        if m.size % 512:
            offsets.add(m.offset_data + m.size)               # padding after the member
    offsets = sorted(o for o in offsets if 0 <= o < len(data))
    bad = tmp_path / "bad.tar"
    for offset in offsets:
        bad.write_bytes(flip(data, offset))
        with pytest.raises(backup.BackupError):
            with app.app_context():
                backup.verify_archive(bad)
    assert len(offsets) > 70

    database = next(m for m in members if m.name.startswith("database/"))
    bad.write_bytes(flip(data, database.offset_data + database.size // 2))
    code, out = invoke(app, "backup", "verify", str(bad))
    assert code == 1 and "成员内容与清单中的 sha256 不符" in out and database.name in out, out

    target_app = fresh("tampered")
    before = instance_state(target_app)
    for offset in (database.offset_data + database.size // 2,
                   next(m for m in members if m.name == "manifest.json").offset_data + 10):
        bad.write_bytes(flip(data, offset))
        code, out = invoke(target_app, "backup", "restore", str(bad))
        assert code == 1 and "已损坏或被改动" in out, out
        assert instance_state(target_app) == before and before[0] == {}

    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(data[: len(data) // 2])
    code, out = invoke(target_app, "backup", "restore", str(truncated))
    assert code == 1 and "已损坏或被改动" in out, out
    assert instance_state(target_app) == before


# ---------------------------------------------------------------- files, atomicity, manifest

def test_a_missing_file_is_a_loud_warning_and_recorded(app, fresh, tmp_path):
    from models import Evidence

    with app.app_context():
        sha = db.session.scalar(select(Evidence.content_sha256).where(Evidence.kind == "file").limit(1))
        from workflow import storage

        os.remove(storage.path_for(sha))
        db.session.remove()
    target = tmp_path / "b.tar"
    code, out = invoke(app, "backup", "create", str(target))
    assert code == 3, out
    assert "✗ 警告" in out and sha in out and "文件不存在" in out
    manifest = backup.verify_archive(target).manifest
    assert [(m["kind"], m["sha256"], m["reason"]) for m in manifest["missing"]] == [("evidence", sha, "missing")]
    assert f"uploads/{sha[:2]}/{sha}" not in manifest["members"]

    restored = fresh("restored")
    code, out = invoke(restored, "backup", "restore", str(target))
    assert code == 0, out
    assert "在备份时已缺失" in out and sha in out


def test_create_writes_the_whole_archive_or_nothing(app, tmp_path, monkeypatch):
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "b.tar"
    calls = []
    original = backup._Writer.add_file

    def failing(self, name, path, expected=None):
        calls.append(name)
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        return original(self, name, path, expected)

    monkeypatch.setattr(backup._Writer, "add_file", failing)
    with pytest.raises(backup.BackupError, match="没有留下不完整的备份文件"):
        with app.app_context():
            backup.create(target)
    assert os.listdir(folder) == []          # neither the archive nor a temporary
    monkeypatch.undo()

    code, out = invoke(app, "backup", "create", str(target))
    assert code == 0, out
    size = target.stat().st_size
    code, out = invoke(app, "backup", "create", str(target))
    assert code == 1 and "已存在" in out, out
    assert target.stat().st_size == size and os.listdir(folder) == ["b.tar"]


def test_a_full_disk_leaves_no_archive_behind(app, full_disk):
    target = full_disk / "b.tar"
    code, out = invoke(app, "backup", "create", str(target))
    assert code == 1 and "失败" in out, out
    assert os.listdir(full_disk) == []


def test_manifest_records_the_snapshot(app, tmp_path):
    from models import AuditHead

    target = tmp_path / "b.tar"
    code, out = invoke(app, "backup", "create", str(target))
    assert code == 0, out
    with tarfile.open(target) as tar:
        names = tar.getnames()
        body = tar.extractfile("manifest.json").read()
        checksum = tar.extractfile("manifest.json.sha256").read().decode()
    assert names[-2:] == ["manifest.json", "manifest.json.sha256"]
    assert checksum == f"{hashlib.sha256(body).hexdigest()}  manifest.json\n"   # sha256sum -c format
    manifest = json.loads(body)
    with app.app_context():
        head = db.session.get(AuditHead, 1)
        assert manifest["audit_head"] == {"seq": head.seq, "hash": head.hash}
        assert manifest["alembic_revision"] == db.session.scalar(text("SELECT version_num FROM alembic_version"))
        for table, count in manifest["row_counts"].items():
            assert db.session.scalar(text(f'SELECT count(*) FROM "{table}"')) == count
        backend = db.engine.dialect.name
        db.session.remove()
    assert manifest["backend"] == backend
    assert set(names) - {"manifest.json", "manifest.json.sha256"} == set(manifest["members"])
    assert manifest["database_member"] == {"sqlite": "database/luoshi.sqlite",
                                           "postgresql": "database/luoshi.pgdump"}[backend]
    if backend == "postgresql":
        assert manifest["tool"]["pg_dump_version"].split(".")[0] >= manifest["tool"]["server_version"].split(".")[0]
    for name, entry in manifest["members"].items():
        if name.startswith(("uploads/", "reports/")):
            assert Path(name).name.removesuffix(".pdf") == entry["sha256"]


def test_pg_tools_get_the_password_from_the_environment():
    dbname, env = backup.pg_environment(
        "postgresql+psycopg://luoshi:s3cret%21@db.example:5433/luoshi_prod?sslmode=require")
    assert dbname == "luoshi_prod"
    assert (env["PGHOST"], env["PGPORT"], env["PGUSER"], env["PGPASSWORD"], env["PGSSLMODE"]) == (
        "db.example", "5433", "luoshi", "s3cret!", "require")
    # The Unix-socket form the test server uses.
    dbname, env = backup.pg_environment("postgresql+psycopg://luoshi@/luoshi_test?host=/tmp/luoshi-pg.x")
    assert (dbname, env["PGHOST"], env["PGUSER"]) == ("luoshi_test", "/tmp/luoshi-pg.x", "luoshi")


# ---------------------------------------------------------------- why not just copy the file

def test_a_naive_copy_of_a_live_sqlite_file_is_stale(tmp_path):
    """What issue 7 saw: the app runs SQLite in WAL mode, so a commit lands in
    luoshi.sqlite-wal and reaches luoshi.sqlite only at a checkpoint. Copying
    the main file while the app runs misses every commit since the last
    checkpoint; the online backup API reads through the WAL. (Deterministic:
    automatic checkpoints are off and the writer's connection stays open.)"""
    live = tmp_path / "live.sqlite"
    writer = sqlite3.connect(live, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE audit_entry (seq INTEGER PRIMARY KEY, hash TEXT)")
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")          # the table is in the main file
    for seq in range(1, 51):
        writer.execute("INSERT INTO audit_entry VALUES (?, ?)", (seq, f"{seq:064x}"))

    naive = tmp_path / "naive.sqlite"
    shutil.copyfile(live, naive)
    online = tmp_path / "online.sqlite"
    source = sqlite3.connect(f"file:{live}?mode=ro", uri=True)
    copy = sqlite3.connect(online)
    source.backup(copy)
    copy.close()
    source.close()
    writer.close()

    def count(path):
        conn = sqlite3.connect(path)
        try:
            return conn.execute("SELECT count(*) FROM audit_entry").fetchone()[0]
        finally:
            conn.close()

    assert count(naive) == 0        # fifty committed entries missing: a stale backup
    assert count(online) == 50


def rewrite(source: Path, target: Path, change) -> None:
    """A well-formed archive whose manifest ``change(manifest)`` edited (and
    whose checksums were recomputed): what another program version or
    backend would have written."""
    with tarfile.open(source) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    manifest = json.loads(dict((m.name, data) for m, data in members)["manifest.json"])
    renames = change(manifest) or {}
    manifest["members"] = {renames.get(n, n): v for n, v in manifest["members"].items()}
    body, checksum = backup._manifest_bytes(manifest)
    with tarfile.open(target, "w", format=tarfile.USTAR_FORMAT) as tar:
        for m, data in members:
            data = {"manifest.json": body, "manifest.json.sha256": checksum}.get(m.name, data)
            m.name = renames.get(m.name, m.name)
            m.size = len(data)
            tar.addfile(m, io.BytesIO(data))


def test_restore_refuses_another_backend_or_an_unknown_schema(app, fresh, tmp_path):
    target = tmp_path / "b.tar"
    code, out = invoke(app, "backup", "create", str(target))
    assert code == 0, out

    def other_backend(manifest):
        other = "postgresql" if manifest["backend"] == "sqlite" else "sqlite"
        renames = {manifest["database_member"]: backup.DB_MEMBER[other]}
        manifest["backend"], manifest["database_member"] = other, backup.DB_MEMBER[other]
        return renames

    def newer_schema(manifest):
        manifest["alembic_revision"] = "ffffffffffff"

    target_app = fresh("target")
    before = instance_state(target_app)
    for change, message in ((other_backend, "不能跨数据库恢复"), (newer_schema, "不是本程序所知的版本")):
        crafted = tmp_path / f"{change.__name__}.tar"
        rewrite(target, crafted, change)
        code, out = invoke(target_app, "backup", "verify", str(crafted))
        assert code == 0, out                               # well-formed …
        code, out = invoke(target_app, "backup", "restore", str(crafted))
        assert code == 1 and message in out and "未写入任何内容" in out, out    # … and refused
        assert instance_state(target_app) == before


def test_a_backup_of_a_tampered_chain_restores_but_fails_loudly(app, fresh, tmp_path):
    from models import AuditEntry
    from tests.test_audit import drop_append_only_guard

    with app.app_context():
        drop_append_only_guard()
        db.session.execute(text("UPDATE audit_entry SET reason = '篡改' WHERE seq = 5"))
        db.session.commit()
        db.session.remove()
    target = tmp_path / "b.tar"
    code, out = invoke(app, "backup", "create", str(target))
    assert code == 0, out

    restored = fresh("restored")
    code, out = invoke(restored, "backup", "restore", str(target))
    assert code == 2 and "第 5 条记录的内容与其哈希不符" in out and "未追加恢复记录" in out, out
    with restored.app_context():
        assert db.session.scalar(select(func.count(AuditEntry.id)).where(
            AuditEntry.action == "backup_restored")) == 0
        db.session.remove()


def test_a_backup_of_an_older_schema_restores_and_asks_for_an_upgrade(fresh, tmp_path):
    from models import AuditEntry

    old = fresh("old")
    code, out = invoke(old, "db", "upgrade", "8969e80b8572")     # an older revision than the head
    assert code == 0, out
    target = tmp_path / "old.tar"
    code, out = invoke(old, "backup", "create", str(target))
    assert code == 0, out
    assert backup.verify_archive(target).manifest["alembic_revision"] == "8969e80b8572"

    restored = fresh("restored")
    code, out = invoke(restored, "backup", "restore", str(target))
    assert code == 0 and "旧版本 8969e80b8572" in out and "flask db upgrade" in out, out
    code, out = invoke(restored, "db", "upgrade")
    assert code == 0, out
    code, out = invoke(restored, "audit", "verify")
    assert code == 0, out
    with restored.app_context():
        assert db.session.scalar(select(func.count(AuditEntry.id))) == 0    # no restore entry on the old schema
        db.session.remove()
