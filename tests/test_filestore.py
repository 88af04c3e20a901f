"""File stores (workflow/filestore.py): the folder store and the S3 store keep
the same promises, and with FILE_STORE=s3 evidence, reports, the storage check
and backups go through a real S3-compatible server (SeaweedFS, tests/s3server.py)
— nothing lands in the local folders."""
from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import make_app
from tests.helpers import log_in
from tests.test_evidence import evidence_rows, started_part, upload, withdraw
from workflow import storage
from workflow.demo_activity import make_pdf
from workflow.extensions import db
from workflow.filestore import LocalStore, S3Store, evidence_store, report_store


@pytest.fixture
def db_template():
    return "seed"


def s3_config(server, bucket: str, **extra) -> dict:
    return {"FILE_STORE": "s3", "S3_ENDPOINT_URL": server.endpoint, "S3_BUCKET": bucket, "S3_PREFIX": "luoshi/",
            "S3_ACCESS_KEY_ID": server.access_key, "S3_SECRET_ACCESS_KEY": server.secret_key, **extra}


def bucket_keys(server, bucket: str, marker: bool = False) -> dict[str, bytes]:
    """Every object of the bucket (without the deployment's mark, unless asked)."""
    client = server.client()
    found = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in found
            if marker or not o["Key"].endswith("/deployment.json")}


def local_files(folder) -> list[Path]:
    root = Path(folder)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# ---------------------------------------------------------------- one contract, two stores

@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(str(tmp_path / "files"))
    server = request.getfixturevalue("s3_server")
    return S3Store(server.client(), request.getfixturevalue("s3_bucket"), "t/")


def test_a_key_is_written_once_and_read_back(store):
    assert store.is_empty()
    assert store.put_once("ab/one", b"first") is True
    assert store.put_once("ab/one", b"second") is False      # never replaced
    with store.open("ab/one") as fh:
        assert fh.read() == b"first"
    assert store.exists("ab/one") and not store.exists("ab/two")
    assert store.put_once("cd/empty", b"") is True
    with store.open("cd/empty") as fh:
        assert fh.read() == b""
    assert sorted(found.key for found in store.walk()) == ["ab/one", "cd/empty"]
    assert not store.is_empty()


def test_a_missing_key_is_file_not_found_and_removal_says_what_it_did(store):
    with pytest.raises(FileNotFoundError):
        store.open("ab/none")
    store.put_once("ab/gone", b"x")
    assert store.remove("ab/gone") is True and not store.exists("ab/gone")
    assert store.remove("ab/gone") is False                 # nothing there: nothing removed
    assert store.age("ab/none", 0) == 0.0


def test_a_large_object_is_kept_byte_for_byte(store):
    data = hashlib.sha256(b"seed").digest() * (5 * 1024 * 1024 // 32 + 7)
    store.put_once("ef/large", data)
    with store.open("ef/large") as fh:
        assert fh.read() == data


def test_an_s3_store_under_another_prefix_sees_nothing_of_this_one(s3_server, s3_bucket):
    mine, theirs = (S3Store(s3_server.client(), s3_bucket, prefix) for prefix in ("a/", "b/"))
    mine.put_once("ab/x", b"mine")
    assert theirs.is_empty() and list(theirs.walk()) == [] and not theirs.exists("ab/x")


def test_a_bucket_that_is_not_there_is_not_a_lost_file(s3_server):
    """A misspelt S3_BUCKET: every HEAD would be a bare 404, like a missing key's; the store says
    the bucket is out of reach instead of "the file is gone"."""
    misspelt = S3Store(s3_server.client(), "luoshi-no-such-bucket", "t/")
    with pytest.raises(OSError) as refused:
        misspelt.exists("ab/x")
    assert "对象存储查询失败：存储桶 luoshi-no-such-bucket 无法访问（404）" in str(refused.value)
    with pytest.raises(OSError):
        misspelt.open("ab/x")


def test_refused_credentials_are_an_os_error_in_words(s3_server, s3_bucket):
    forged = S3Store(s3_server.client(secret_key="not-the-secret"), s3_bucket, "t/")
    with pytest.raises(OSError) as refused:
        forged.put_once("ab/x", b"x")
    assert "对象存储写入失败" in str(refused.value)
    assert bucket_keys(s3_server, s3_bucket) == {}


def test_an_unknown_file_store_is_refused_at_start(databases, tmp_path):
    with pytest.raises(RuntimeError, match="FILE_STORE"):
        make_app(databases.clone("empty", tmp_path), tmp_path, FILE_STORE="ftp")
    with pytest.raises(RuntimeError, match="S3_BUCKET"):
        make_app(databases.clone("empty", tmp_path), tmp_path, FILE_STORE="s3")


# ---------------------------------------------------------------- the app on an S3 bucket

@pytest.fixture
def app_config(request):
    server = request.getfixturevalue("s3_server")
    return s3_config(server, request.getfixturevalue("s3_bucket"))


@pytest.fixture
def bucket(app):
    return app.config["S3_BUCKET"]


def test_evidence_goes_to_the_bucket_and_comes_back(app, client, s3_server, bucket):
    task_id, part_id, username = started_part(app)
    log_in(client, username)
    data = make_pdf("stored in the bucket")
    sha = hashlib.sha256(data).hexdigest()
    page = upload(client, app, task_id, part_id, data, "验收报告.pdf").get_data(as_text=True)
    assert "材料已上传" in page or "验收报告.pdf" in page
    assert bucket_keys(s3_server, bucket) == {f"luoshi/uploads/{sha[:2]}/{sha}": data}
    assert local_files(app.config["UPLOAD_FOLDER"]) == []
    [(evidence_id, *_)] = evidence_rows(app)

    response = client.get(f"/evidence/{evidence_id}/download")
    assert response.status_code == 200 and response.data == data
    assert response.headers["Content-Type"] == "application/pdf"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "private, no-store"
    again = client.get(f"/evidence/{evidence_id}/download", headers={"If-None-Match": f'"{sha}"'})
    assert again.status_code == 304

    assert "材料已撤回" in withdraw(client, task_id, evidence_id).get_data(as_text=True)
    assert bucket_keys(s3_server, bucket) == {}


def test_an_unreachable_store_refuses_the_upload_and_changes_nothing(databases, tmp_path, s3_bucket):
    from models import Evidence

    closed = make_app(databases.clone("seed", tmp_path), tmp_path, FILE_STORE="s3",
                      S3_ENDPOINT_URL="http://127.0.0.1:9", S3_BUCKET=s3_bucket,
                      S3_ACCESS_KEY_ID="x", S3_SECRET_ACCESS_KEY="y")
    task_id, part_id, username = started_part(closed)
    client = log_in(closed.test_client(), username)
    page = upload(client, closed, task_id, part_id, make_pdf("nowhere to go"), "台账.pdf").get_data(as_text=True)
    assert "服务器保存文件时出错，文件未保存，其他内容也未改动" in page
    with closed.app_context():
        assert db.session.scalars(select(Evidence)).all() == []
        db.session.remove()
        db.engine.dispose()


def test_a_report_is_archived_in_the_bucket(app, s3_server, bucket):
    from workflow.reports import archive

    pdf = make_pdf("a report")
    with app.app_context():
        sha = archive.store(pdf)
        assert report_store().exists(archive.report_key(sha))

        class Row:
            sha256 = sha
        assert archive.read_pdf(Row) == pdf
    assert bucket_keys(s3_server, bucket) == {f"luoshi/reports/{sha[:2]}/{sha}.pdf": pdf}
    assert local_files(app.config["REPORT_FOLDER"]) == []


def test_the_storage_check_reads_the_bucket(app, client, runner, s3_server, bucket):
    task_id, part_id, username = started_part(app)
    log_in(client, username)
    kept, lost = make_pdf("kept"), make_pdf("lost")
    for data, name in ((kept, "台账.pdf"), (lost, "签到表.pdf")):
        upload(client, app, task_id, part_id, data, name)
    lost_sha = hashlib.sha256(lost).hexdigest()
    s3 = s3_server.client()
    s3.delete_object(Bucket=bucket, Key=f"luoshi/uploads/{lost_sha[:2]}/{lost_sha}")
    with app.app_context():
        orphan_sha, _ = storage.store(make_pdf("nobody uses me"))
        db.session.rollback()
    s3.put_object(Bucket=bucket, Key="luoshi/uploads/zz/notes.txt", Body=b"not the app's")

    result = runner.invoke(args=["storage", "check", "--clean"])
    assert result.exit_code == 1, result.output                 # a referenced file is missing
    assert "丢失：佐证材料" in result.output and lost_sha in result.output
    assert f"孤立的佐证材料文件：s3://{bucket}/luoshi/uploads/{orphan_sha[:2]}/{orphan_sha}" in result.output
    assert f"孤立的佐证材料文件：s3://{bucket}/luoshi/uploads/zz/notes.txt" in result.output
    kept_sha = hashlib.sha256(kept).hexdigest()
    # The unreferenced evidence goes at once (decided under its content lock); a file the app
    # did not name waits out its grace time; the referenced one stays.
    assert sorted(bucket_keys(s3_server, bucket)) == sorted(
        [f"luoshi/uploads/{kept_sha[:2]}/{kept_sha}", "luoshi/uploads/zz/notes.txt"])
    with app.app_context():                                  # two hours on: past its grace time
        removed = storage.clean(storage.survey(), now=time.time() + 2 * 3600)
        db.session.remove()
    assert removed == [f"s3://{bucket}/luoshi/uploads/zz/notes.txt"]
    assert sorted(bucket_keys(s3_server, bucket)) == [f"luoshi/uploads/{kept_sha[:2]}/{kept_sha}"]


def test_a_backup_moves_an_instance_between_a_bucket_and_a_folder(app, client, s3_server, bucket, databases,
                                                                   tmp_path):
    """Backup from the bucket, restore into a folder instance and into a new bucket:
    the way a district's data moves onto (or off) shared object storage."""
    from models import Evidence

    task_id, part_id, username = started_part(app)
    log_in(client, username)
    files = [make_pdf(f"file {n}") for n in range(3)]
    for n, data in enumerate(files):
        upload(client, app, task_id, part_id, data, f"材料{n}.pdf")
    target = tmp_path / "backup.tar"
    result = app.test_cli_runner().invoke(args=["backup", "create", str(target)])
    assert result.exit_code == 0 and "✗" not in result.output, result.output

    def fresh(name: str, **config):
        folder = tmp_path / name
        folder.mkdir()
        return make_app(databases.new_empty(folder), folder, **config)

    other_bucket = f"luoshi-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=other_bucket)
    for restored in (fresh("in-a-folder"), fresh("in-a-bucket", **s3_config(s3_server, other_bucket))):
        result = restored.test_cli_runner().invoke(args=["backup", "restore", str(target)])
        assert result.exit_code == 0, result.output
        with restored.app_context():
            shas = db.session.scalars(select(Evidence.content_sha256).where(Evidence.kind == "file")).all()
            assert sorted(shas) == sorted(hashlib.sha256(d).hexdigest() for d in files)
            for sha in shas:
                with evidence_store().open(storage.evidence_key(sha)) as fh:
                    assert hashlib.sha256(fh.read()).hexdigest() == sha
            db.session.remove()
            db.engine.dispose()
    assert len(local_files(tmp_path / "in-a-folder" / "uploads")) == 3
    assert len([k for k in bucket_keys(s3_server, other_bucket) if k.startswith("luoshi/uploads/")]) == 3


def test_a_backup_on_one_host_pauses_removals_on_another(app, databases, tmp_path, s3_server, bucket):
    """Two hosts on one database and one bucket: each has its own instance folder (its own
    flock), so only the database's lock can tell the other host that a backup holds the files."""
    if databases.admin is None:
        pytest.skip("SQLite: one host only (the flock of its instance folder is the pause)")
    other_folder = tmp_path / "other-host"
    other_folder.mkdir()
    other = make_app(app.config["SQLALCHEMY_DATABASE_URI"], other_folder, **s3_config(s3_server, bucket))
    assert other.instance_path != app.instance_path
    with other.app_context():
        sha, _ = storage.store(make_pdf("an orphan during a backup"))
        db.session.commit()
    key = f"luoshi/uploads/{sha[:2]}/{sha}"
    with app.app_context():
        with storage.removals_paused():
            with other.app_context():
                assert storage.discard_unreferenced(sha) is False
            assert key in bucket_keys(s3_server, bucket)
        db.session.remove()
    with other.app_context():
        assert storage.discard_unreferenced(sha) is True
        db.session.remove()
        db.engine.dispose()
    assert key not in bucket_keys(s3_server, bucket)


@pytest.mark.parametrize("db_template", ["empty"])
def test_a_document_reviewed_on_one_host_is_confirmed_on_another(app, office_client, s3_server, bucket, tmp_path):
    """The staged upload waits in the bucket (staging/), not in a host's instance folder."""
    import io

    from models import Plan
    from tests.fidelity import SHAPES
    from tests.helpers import csrf, csrf_token
    from tests.test_import_review import _mapping_fields
    from workflow.importer.load import sha256_of

    data = (SHAPES / "table-ledger.xlsx").read_bytes()
    token = csrf_token(office_client, "/plans/import")
    review = office_client.post("/plans/import", data={"csrf_token": token, "document": (io.BytesIO(data), "台账.xlsx")},
                                content_type="multipart/form-data")
    assert review.status_code == 200, review.get_data(as_text=True)
    sha = sha256_of(data)
    assert set(bucket_keys(s3_server, bucket)) == {f"luoshi/staging/{sha}.bin", f"luoshi/staging/{sha}.name"}

    other_folder = tmp_path / "other-host"
    other_folder.mkdir()
    other = make_app(app.config["SQLALCHEMY_DATABASE_URI"], other_folder, **s3_config(s3_server, bucket))
    elsewhere = other.test_client()
    elsewhere.set_cookie("session", office_client.get_cookie("session").value)
    html = review.get_data(as_text=True)
    fields = {"csrf_token": csrf(html), "sha256": sha, **_mapping_fields(html)}
    done = elsewhere.post("/plans/import/confirm", data=fields)
    assert done.status_code == 302, done.get_data(as_text=True)
    with other.app_context():
        assert db.session.scalar(select(Plan)).source_filename == "台账.xlsx"
        db.session.remove()
        db.engine.dispose()
    assert bucket_keys(s3_server, bucket) == {}          # confirmed: no longer staged


@pytest.fixture
def cut_off(app, tmp_path, bucket):
    """The same database and bucket, seen from a host that cannot reach the object store."""
    folder = tmp_path / "cut-off-host"
    folder.mkdir()
    other = make_app(app.config["SQLALCHEMY_DATABASE_URI"], folder, FILE_STORE="s3",
                     S3_ENDPOINT_URL="http://127.0.0.1:9", S3_BUCKET=bucket, S3_PREFIX="luoshi/",
                     S3_ACCESS_KEY_ID="x", S3_SECRET_ACCESS_KEY="y")
    yield other
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


def test_evidence_from_an_unreachable_store_is_a_chinese_page(app, client, cut_off):
    task_id, part_id, username = started_part(app)
    log_in(client, username)
    upload(client, app, task_id, part_id, make_pdf("stored, then the store goes away"), "台账.pdf")
    [(evidence_id, *_)] = evidence_rows(app)
    response = log_in(cut_off.test_client(), username).get(f"/evidence/{evidence_id}/download")
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "文件暂时无法读取" in page and "文件存储暂时无法读取" in page
    assert response.headers["Cache-Control"] == "private, no-store"


def test_work_is_not_handed_in_while_its_files_cannot_be_checked(app, client, cut_off):
    from models import TaskPart
    from tests.test_evidence import submit

    task_id, part_id, username = started_part(app)
    log_in(client, username)
    upload(client, app, task_id, part_id, make_pdf("handed in while the store is away"), "台账.pdf")
    page = submit(log_in(cut_off.test_client(), username), task_id, part_id, cut_off).get_data(as_text=True)
    assert "文件存储暂时无法访问，无法确认材料的文件是否完好，本次未提交" in page
    with app.app_context():
        part = db.session.get(TaskPart, part_id)
        assert part.state == "in_progress" and part.submissions == []
        db.session.remove()


def test_the_commands_say_when_the_store_is_out_of_reach(app, cut_off, databases, tmp_path):
    result = cut_off.test_cli_runner().invoke(args=["storage", "check"])
    assert result.exit_code == 1 and "无法读取文件存储：对象存储列举失败" in result.output
    target = tmp_path / "backup.tar"
    assert app.test_cli_runner().invoke(args=["backup", "create", str(target)]).exit_code == 0
    folder = tmp_path / "restore-cut-off"
    folder.mkdir()
    restoring = make_app(databases.new_empty(folder), folder, **{
        k: cut_off.config[k] for k in ("FILE_STORE", "S3_ENDPOINT_URL", "S3_BUCKET", "S3_PREFIX",
                                       "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY")})
    result = restoring.test_cli_runner().invoke(args=["backup", "restore", str(target)])
    assert result.exit_code == 1 and "佐证材料对象存储" in result.output and "无法访问" in result.output
    assert "未写入任何内容" in result.output
    with restoring.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_prefix_another_deployment_uses_is_refused(app, client, databases, tmp_path, s3_server, bucket):
    """Another database (another audit trail) configured with this bucket and prefix: it neither
    stores into it nor cleans it (it would take this deployment's files for unreferenced ones)."""
    from models import Evidence
    from workflow import audit

    task_id, part_id, username = started_part(app)
    log_in(client, username)
    upload(client, app, task_id, part_id, make_pdf("this deployment's file"), "台账.pdf")
    mine = bucket_keys(s3_server, bucket, marker=True)
    assert "luoshi/deployment.json" in mine and len(mine) == 2

    folder = tmp_path / "another-district"
    folder.mkdir()
    other = make_app(databases.clone("empty", folder), folder, **s3_config(s3_server, bucket))
    with other.app_context():
        audit.append("some_action", username="cli")          # a trail of its own
        db.session.commit()
        with pytest.raises(storage.StorageFailed):
            storage.store(make_pdf("the other district's file"))
        db.session.rollback()
        assert db.session.scalars(select(Evidence)).all() == []
        db.session.remove()
    result = other.test_cli_runner().invoke(args=["storage", "check", "--clean"])
    assert result.exit_code == 1 and "属于另一套系统" in result.output, result.output
    assert bucket_keys(s3_server, bucket, marker=True) == mine     # nothing stored, nothing removed
    with other.app_context():
        db.session.remove()
        db.engine.dispose()
