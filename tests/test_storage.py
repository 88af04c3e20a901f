"""flask storage check [--clean]: missing, damaged, orphaned and partial files
are listed; the clean-up removes only what no row references."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from workflow import storage
from workflow.demo_activity import make_pdf
from workflow.extensions import db


@pytest.fixture
def db_template():
    return "activity"


def files_under(folder) -> list[Path]:
    root = Path(folder)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def referenced_paths(app) -> list[Path]:
    from models import Evidence

    with app.app_context():
        shas = set(db.session.scalars(select(Evidence.content_sha256).where(Evidence.content_sha256.is_not(None))))
        paths = sorted(Path(storage.path_for(sha)) for sha in shas)
        db.session.remove()
    return paths


def age(path: Path, seconds: int) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_a_healthy_store_checks_out(app, runner):
    referenced = referenced_paths(app)
    assert referenced and all(p.exists() for p in referenced)
    result = runner.invoke(args=["storage", "check"])
    assert result.exit_code == 0, result.output
    assert f"佐证材料文件 {len(referenced)} 个" in result.output
    assert "孤立的佐证材料文件 0 个" in result.output


def test_missing_and_damaged_files_are_named(app, runner):
    from models import Evidence

    lost, damaged = referenced_paths(app)[:2]
    lost.unlink()
    damaged.write_bytes(b"%PDF-1.4 overwritten")
    with app.app_context():
        ids = db.session.scalars(select(Evidence.id).where(Evidence.content_sha256 == lost.name)).all()
        db.session.remove()
    result = runner.invoke(args=["storage", "check"])
    assert result.exit_code == 1
    assert f"丢失：佐证材料 {'、'.join(f'#{i}' for i in ids)} 的文件 {lost.name}" in result.output
    assert f"损坏：{damaged}" in result.output


def test_clean_removes_only_what_nothing_references(app, runner):
    uploads = Path(app.config["UPLOAD_FOLDER"])
    referenced = referenced_paths(app)
    with app.app_context():
        orphan = Path(storage.path_for(storage.store(make_pdf("withdrawn long ago"))[0]))
        db.session.rollback()
    old_partial, fresh_partial = uploads / "ab" / ".partial-old", uploads / "ab" / ".partial-now"
    for p in (old_partial, fresh_partial):
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"half a file")
    age(old_partial, 2 * 3600)
    staging = Path(app.instance_path) / "staging"
    staging.mkdir()
    old_staged, new_staged = staging / ("a" * 64 + ".bin"), staging / ("b" * 64 + ".bin")
    old_staged.write_bytes(b"never confirmed")
    new_staged.write_bytes(b"under review")
    age(old_staged, 3 * 24 * 3600)

    result = runner.invoke(args=["storage", "check", "--clean"])
    assert result.exit_code == 0, result.output
    assert f"孤立的佐证材料文件：{orphan}" in result.output and f"写入中断的残留文件：{old_partial}" in result.output
    assert "已删除 3 个无引用的文件" in result.output
    assert not orphan.exists() and not old_partial.exists() and not old_staged.exists()
    assert fresh_partial.exists() and new_staged.exists()
    assert all(p.exists() for p in referenced)
    assert set(files_under(uploads)) == set(referenced) | {fresh_partial}


def test_a_file_referenced_after_the_survey_is_kept(app):
    """The survey and the removal are apart in time: an upload that commits in
    between keeps its file, because each removal is decided again under the
    content lock."""
    from models import Evidence, TaskPart, User

    data = make_pdf("uploaded while the clean-up ran")
    sha = hashlib.sha256(data).hexdigest()
    with app.app_context():
        storage.store(data)
        db.session.rollback()
        found = storage.survey()
        assert storage.path_for(sha) in found.orphaned_evidence
        part = db.session.scalar(select(TaskPart).where(TaskPart.state == "in_progress"))
        user = db.session.scalar(select(User).where(User.unit_id == part.unit_id))
        db.session.add(Evidence(part_id=part.id, kind="file", filename="台账.pdf", content_sha256=sha,
                                size=len(data), mime="application/pdf", uploaded_by_id=user.id,
                                uploaded_at=part.task.item.plan.imported_at))
        db.session.commit()
        removed = storage.clean(found)
        assert storage.path_for(sha) not in removed and os.path.exists(storage.path_for(sha))
        db.session.remove()


def test_removals_wait_while_a_backup_holds_the_files(app):
    with app.app_context():
        sha, _ = storage.store(make_pdf("orphan during a backup"))
        db.session.rollback()
        with storage.removals_paused():
            assert storage.discard_unreferenced(sha) is False
            assert os.path.exists(storage.path_for(sha))
        assert storage.discard_unreferenced(sha) is True
        assert not os.path.exists(storage.path_for(sha))
        db.session.remove()


def test_an_unreferenced_report_goes_after_its_grace_time_and_a_referenced_one_stays(app):
    from models import ReportArchive
    from workflow.reports import archive

    with app.app_context():
        referenced = [archive.path_for(sha) for sha in db.session.scalars(
            select(ReportArchive.sha256).where(ReportArchive.sha256.is_not(None)))]
        assert referenced and all(os.path.exists(p) for p in referenced)
        orphan = archive.path_for(archive.store(make_pdf("a report nobody archived")))
        found = storage.survey()
        assert found.orphaned_reports == [orphan]
        assert storage.clean(found) == [] and os.path.exists(orphan)          # written within the hour
        assert storage.clean(found, now=time.time() + 2 * 3600) == [orphan]
        assert not os.path.exists(orphan) and all(os.path.exists(p) for p in referenced)
        db.session.remove()
