"""Admin commands: flask plan …, flask demo, flask audit …, flask backup …, flask user …"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from models import AuditEntry, Item, Plan, Task
from workflow import audit, background_cli, backup, reminders, storage
from workflow import demo as demo_module
from workflow.demo_activity import describe as describe_activity
from workflow.export import plan_as_dict, plan_as_xlsx
from workflow.extensions import db
from workflow.importer import service
from workflow.reports.cli import report_cli
from workflow.sqlite import write_transactions
from workflow.timeutil import today_local

plan_cli = AppGroup("plan", help="导入、导出实施方案。")
audit_cli = AppGroup("audit", help="审计链。")
backup_cli = AppGroup("backup", help="备份与恢复（数据库、佐证材料和报告文件，见 docs/backup.md）。")
storage_cli = AppGroup("storage", help="佐证材料、报告存档与待确认导入文件。")


@plan_cli.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="只显示审核结果，不写入。")
@click.option("--replace-invalid", is_flag=True,
              help="UTF-8 文本中有无法识别的字节时，以替换字符“\ufffd”读取，并在审核结果中逐处列出。")
def plan_import(path: Path, dry_run: bool, replace_invalid: bool):
    """导入任务文件：实施方案汇编、正文任务清单或任务表格（.txt UTF-8/GB18030、.docx、.xlsx、.xls）。

    单位名称按审核建议处理（同一文件中的不同写法归并，其余新建）；需要逐个决定时请在网页上导入。
    退出码：0 成功（或已导入过、试运行通过）；1 审核发现不能导入的问题；2 文件无法读取或写入失败。"""
    if not path.exists():
        raise click.ClickException(f"文件不存在：{path}")
    try:
        rv = service.review_upload(path.read_bytes(), path.name, replace_invalid=replace_invalid)
    except service.InvalidBytesError as exc:
        click.echo(f"导入失败：{exc.message}", err=True)
        for place in exc.places:
            click.echo(f"  {place.describe()}", err=True)
        if exc.total > len(exc.places):
            click.echo(f"  另有 {exc.total - len(exc.places)} 处未列出", err=True)
        click.echo("如需以替换字符读取，请加 --replace-invalid 参数重新运行。", err=True)
        sys.exit(2)
    except service.DocumentError as exc:
        click.echo(f"导入失败：{exc.message}", err=True)
        for line in getattr(exc, "found", None) or ():
            click.echo(f"  {line}", err=True)
        sys.exit(2)
    click.echo(rv.as_text())
    if rv.problems:
        click.echo(f"导入失败：审核发现 {len(rv.problems)} 处问题，文件不能导入"
                   f"{'' if dry_run else '，未写入任何数据'}（见上方“不能导入”各行）。", err=True)
        sys.exit(1)
    if dry_run:
        click.echo("（试运行：未写入任何数据）")
        return
    if rv.already_imported:
        return
    try:
        plan = service.confirm(rv, user=None)
    except service.DocumentError as exc:
        click.echo(f"导入失败：{exc.message}", err=True)
        sys.exit(2)
    click.echo(f"已导入：方案编号 {plan.id}，{rv.counts['items']} 个事项，"
               f"{rv.counts['tasks'] + rv.counts['measures']} 条任务。")


@plan_cli.command("export")
@click.argument("plan_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["json", "xlsx"]), default="json")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="输出文件；JSON 默认输出到标准输出。")
def plan_export(plan_id: int, fmt: str, out: Path | None):
    """导出方案（JSON 或 xlsx 台账）。"""
    if fmt == "json":
        data = plan_as_dict(plan_id)
        if data is None:
            raise click.ClickException(f"方案 {plan_id} 不存在。")
        text = json.dumps(data, ensure_ascii=False, indent=2)
        if out:
            out.write_text(text + "\n", encoding="utf-8")
        else:
            click.echo(text)
    else:
        if out is None:
            raise click.ClickException("导出 xlsx 需要 --out 文件名。")
        content = plan_as_xlsx(plan_id)
        if content is None:
            raise click.ClickException(f"方案 {plan_id} 不存在。")
        out.write_bytes(content)
        click.echo(f"已写入 {out}")


@plan_cli.command("list")
def plan_list():
    """列出已导入的方案。"""
    for plan in db.session.scalars(select(Plan).order_by(Plan.id)):
        tasks = db.session.scalar(select(func.count(Task.id)).join(Item).where(Item.plan_id == plan.id))
        click.echo(f"{plan.id}\t{plan.title}\t{tasks} 条任务\t{plan.source_sha256[:12]}")


@audit_cli.command("verify")
def audit_verify():
    """校验审计链是否完整未被篡改。"""
    problems = audit.verify()
    count = db.session.scalar(select(func.count(AuditEntry.id)))
    if problems:
        for p in problems:
            click.echo(f"✗ {p.message}", err=True)
        click.echo(f"审计链校验失败：{len(problems)} 处问题（共 {count} 条记录）。", err=True)
        sys.exit(1)
    click.echo(f"审计链完整：{count} 条记录，链尾哈希 {audit.head_hash()}")


@backup_cli.command("create")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def backup_create(path: Path):
    """备份数据库、佐证材料和报告文件到一个归档文件（应用可照常运行）。"""
    try:
        created = backup.create(path)
    except backup.BackupError as exc:
        raise click.ClickException(exc.message) from None
    except OperationalError as exc:
        raise click.ClickException(f"无法访问数据库，未写入备份：{exc.orig or exc}") from None
    click.echo(f"已创建备份：{created.path}（{created.size} 字节，sha256 {created.sha256}）")
    for line in backup.describe_manifest(created.manifest):
        click.echo(line)
    if created.missing:
        for line in backup.describe_missing(created.manifest):
            click.echo(line, err=True)
        click.echo(f"✗ 警告：数据库引用的 {len(created.missing)} 个文件未能备份（已记入清单 manifest.json 的 missing），"
                   f"备份的其余部分完整。请查明原因。", err=True)
        sys.exit(3)


def _or_exit(action, path: Path):
    """Run a backup action; a refusal prints its problems and exits 1."""
    try:
        return action(path)
    except backup.BackupError as exc:
        for problem in exc.problems:
            click.echo(f"✗ {problem}", err=True)
        click.echo(exc.message, err=True)
        sys.exit(1)


@backup_cli.command("verify")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def backup_verify(path: Path):
    """校验备份文件是否完整未被改动（不恢复）。"""
    verified = _or_exit(backup.verify_archive, path)
    manifest = verified.manifest
    click.echo(f"备份完整：{verified.path}（{verified.size} 字节，sha256 {verified.sha256}），"
               f"{len(manifest['members'])} 个文件的 sha256 均相符。")
    for line in backup.describe_manifest(manifest):
        click.echo(line)
    for line in backup.describe_missing(manifest):
        click.echo(line, err=True)


@backup_cli.command("restore")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def backup_restore(path: Path):
    """把备份恢复到一个空的实例（先校验整个备份，再写入）。恢复期间请停止应用。"""
    try:
        restored = _or_exit(backup.restore, path)
    except OperationalError as exc:
        click.echo(f"无法访问目标数据库：{exc.orig or exc}", err=True)
        sys.exit(1)
    manifest = restored.manifest
    head = manifest["audit_head"]
    click.echo(f"已从备份恢复：{restored.verified.path}（sha256 {restored.verified.sha256}）")
    for line in backup.describe_manifest(manifest):
        click.echo(line)
    click.echo(f"  已恢复：数据库（{backup.BACKEND_LABELS[manifest['backend']]}），佐证材料文件 "
               f"{restored.evidence_files} 个、报告文件 {restored.report_files} 个，sha256 均已核对。")
    when = backup.local_time(manifest["snapshot_at"], f"（北京时间，{backup.age(manifest['snapshot_at'])}）")
    click.echo(f"  注意：恢复的是 {when}的数据；此后的一切改动（审计链第 {head['seq']} 条之后的记录）都不在其中。")
    for line in backup.describe_missing(manifest):
        click.echo(line.replace("未能备份", "在备份时已缺失，未能恢复"), err=True)
    failed = False
    for message in restored.count_mismatches:
        click.echo(f"✗ 行数与备份清单不符：{message}", err=True)
        failed = True
    if restored.audit_problems:
        for p in restored.audit_problems:
            click.echo(f"✗ {p.message}", err=True)
        click.echo(f"✗ 审计链校验失败：{len(restored.audit_problems)} 处问题。未追加恢复记录。", err=True)
        failed = True
    else:
        click.echo(f"  审计链校验完整：恢复后的链头与备份时一致（第 {head['seq']} 条，{head['hash']}）。")
    if not restored.schema_current:
        click.echo(f"  数据库结构为旧版本 {manifest.get('alembic_revision')}：请运行 flask db upgrade。"
                   f"升级前未追加恢复记录。", err=True)
    if restored.audit_entry_seq is not None:
        click.echo(f"  已追加审计记录“从备份恢复”（第 {restored.audit_entry_seq} 条），记下备份的时间和链头。")
    if failed:
        sys.exit(2)


@storage_cli.command("check")
@click.option("--clean", is_flag=True, help="删除没有任何记录引用的文件（被引用的文件绝不删除）。")
@click.option("--no-hashes", is_flag=True, help="不逐个核对文件内容的哈希（更快）。")
def storage_check(clean: bool, no_hashes: bool):
    """列出丢失、损坏、孤立和残留的文件；--clean 清理孤立与残留文件。"""
    write_transactions()   # removals decide under the content lock (SQLite: BEGIN IMMEDIATE)
    try:
        found = storage.survey(check_hashes=not no_hashes)
    except OSError as exc:   # a folder that cannot be read, a bucket out of reach
        raise click.ClickException(f"无法读取文件存储：{exc.strerror or exc}") from exc
    click.echo(f"佐证材料文件 {found.evidence_files} 个，报告存档文件 {found.report_files} 个。")
    for sha, ids in found.missing_evidence:
        click.echo(f"✗ 丢失：佐证材料 {'、'.join(f'#{i}' for i in ids)} 的文件 {sha}", err=True)
    for sha, ids in found.missing_reports:
        click.echo(f"✗ 丢失：报告存档 {'、'.join(f'#{i}' for i in ids)} 的文件 {sha}.pdf", err=True)
    for path in found.damaged:
        click.echo(f"✗ 损坏：{path}（内容与文件名中的哈希不符）", err=True)
    groups = (("孤立的佐证材料文件", found.orphaned_evidence), ("孤立的报告文件", found.orphaned_reports),
              ("写入中断的残留文件", found.partial), ("未确认的导入文件", found.staged))
    for label, paths in groups:
        for path in paths:
            click.echo(f"· {label}：{path}")
    click.echo("；".join(f"{label} {len(paths)} 个" for label, paths in groups) + "。")
    if clean:
        try:
            removed = storage.clean(found)
        except OSError as exc:   # another deployment's store, a store out of reach: nothing removed
            raise click.ClickException(exc.strerror or str(exc)) from exc
        kept = sum(len(paths) for _, paths in groups) - len(removed)
        click.echo(f"已删除 {len(removed)} 个无引用的文件" + (
            f"；{kept} 个仍在宽限期内或已被引用，保留。" if kept else "。"))
    if not found.healthy:
        click.echo("存储检查发现问题：请从备份恢复丢失或损坏的文件（见 docs/backup.md）。", err=True)
        sys.exit(1)


@click.command("demo")
@with_appcontext
@click.option("--seed", "seed_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="种子文档路径（默认：仓库自带的汇编）。")
def demo(seed_path: Path | None):
    """演示模式：导入种子汇编、创建演示账号并打印，首次运行时生成演示办理记录。"""
    if current_app.config["LUOSHI_ENV"] == "production":
        raise click.ClickException("生产环境不能创建演示账号。")
    accounts = demo_module.load_demo(seed_path)
    db.session.commit()
    click.echo(demo_module.describe(accounts))
    # Once only: play_activity does nothing when any activity exists.
    activity = demo_module.play_activity()
    db.session.commit()
    click.echo(describe_activity(activity))
    # The rounds the story closed asked for their 调度通报: rendered now, once the story is in.
    rendered = demo_module.render_pending_reports(current_app._get_current_object())
    if rendered:
        click.echo(f"调度通报：已生成 {rendered} 份。")
    # Channels beyond the inbox, then the story's last day's sweep, for the worker to run
    # and deliver to the local mail server and robot receiver (scripts/run.sh starts both).
    robots = demo_module.configure_channels()
    queued = reminders.request_sweep(today_local(), "demo")
    db.session.commit()
    click.echo(f"通知渠道：演示账号均已设置邮箱（@{demo_module.DEMO_MAIL_DOMAIN}），{robots} 个单位设置了工作群机器人。"
               + (f"{today_local().isoformat()} 的提醒巡查已排队，由后台处理程序执行。" if queued else ""))


def register_cli(app: Flask) -> None:
    app.cli.add_command(plan_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(backup_cli)
    app.cli.add_command(storage_cli)
    app.cli.add_command(demo)
    app.cli.add_command(report_cli)
    background_cli.register(app)
