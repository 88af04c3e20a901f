"""Admin commands: flask plan …, flask demo, flask audit …, flask user …"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select

from workflow.extensions import db

plan_cli = AppGroup("plan", help="导入、导出实施方案。")
audit_cli = AppGroup("audit", help="审计链。")


@plan_cli.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="只显示审核结果，不写入。")
@click.option("--replace-invalid", is_flag=True,
              help="UTF-8 文本中有无法识别的字节时，以替换字符“\ufffd”读取，并在审核结果中逐处列出。")
def plan_import(path: Path, dry_run: bool, replace_invalid: bool):
    """导入实施方案汇编（.txt UTF-8/GB18030 或 .docx）。

    退出码：0 成功（或已导入过、试运行通过）；1 审核发现不能导入的问题；2 文件无法读取或写入失败。"""
    from workflow.importer import service

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
    from workflow.export import plan_as_dict, plan_as_xlsx

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
    from models import Item, Plan, Task

    for plan in db.session.scalars(select(Plan).order_by(Plan.id)):
        tasks = db.session.scalar(select(func.count(Task.id)).join(Item).where(Item.plan_id == plan.id))
        click.echo(f"{plan.id}\t{plan.title}\t{tasks} 条任务\t{plan.source_sha256[:12]}")


@audit_cli.command("verify")
def audit_verify():
    """校验审计链是否完整未被篡改。"""
    from models import AuditEntry
    from workflow import audit

    problems = audit.verify()
    count = db.session.scalar(select(func.count(AuditEntry.id)))
    if problems:
        for p in problems:
            click.echo(f"✗ {p.message}", err=True)
        click.echo(f"审计链校验失败：{len(problems)} 处问题（共 {count} 条记录）。", err=True)
        sys.exit(1)
    click.echo(f"审计链完整：{count} 条记录，链尾哈希 {audit.head_hash()}")


@click.command("demo")
@with_appcontext
@click.option("--seed", "seed_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="种子文档路径（默认：仓库自带的汇编）。")
def demo(seed_path: Path | None):
    """演示模式：导入种子汇编、创建演示账号并打印，首次运行时生成演示办理记录。"""
    from workflow import demo as demo_module

    if current_app.config["LUOSHI_ENV"] == "production":
        raise click.ClickException("生产环境不能创建演示账号。")
    from workflow.demo_activity import describe as describe_activity

    accounts = demo_module.load_demo(seed_path)
    db.session.commit()
    click.echo(demo_module.describe(accounts))
    # Once only: play_activity does nothing when any activity exists.
    activity = demo_module.play_activity()
    db.session.commit()
    click.echo(describe_activity(activity))


def register_cli(app: Flask) -> None:
    app.cli.add_command(plan_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(demo)
    from workflow.reports.cli import report_cli

    app.cli.add_command(report_cli)
