"""flask report generate | verify | list"""
from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from models import ReportArchive, User
from workflow.extensions import db
from workflow.sqlite import write_transactions
from workflow.timeutil import format_local
from workflow.vocabulary import ReportStatus

from workflow import background

from . import archive, jobs, render

report_cli = AppGroup("report", help="进展报告。")


@report_cli.command("generate")
@click.option("--kind", type=click.Choice(["overall", "unit", "item"]), required=True,
              help="overall 总体进展 / unit 单位报告 / item 事项详情")
@click.option("--plan", "plan_id", type=int, default=None, help="方案编号（默认最新导入的方案）")
@click.option("--unit", "unit_id", type=int, default=None, help="单位编号（单位报告）")
@click.option("--item", "item_number", default=None, help="事项编号，如 19-1（事项详情）")
@click.option("--as-of", "as_of", default=None, help="截至日期 YYYY-MM-DD（默认今天，演示时钟设定时为其日期；要复现同一报告请明确给出）")
@click.option("--user", "username", default=None, help="记为生成人的用户名（默认：命令行）")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="输出 PDF 文件")
def generate(kind, plan_id, unit_id, item_number, as_of, username, out: Path):
    """生成报告（同步），存档并写入 --out。"""
    if not render.harfbuzz_subset_available():
        click.echo("警告：" + render.HARFBUZZ_MISSING_MESSAGE, err=True)
    write_transactions(True)
    user = None
    if username:
        user = db.session.scalar(select(User).where(User.username == username))
        if user is None:
            raise click.ClickException(f"用户 {username} 不存在。")
    try:
        params = archive.make_params(kind, plan_id=plan_id, unit_id=unit_id, item_number=item_number, as_of=as_of)
    except archive.ReportError as exc:
        raise click.ClickException(exc.message) from None
    size = archive.estimate(params)
    click.echo(f"规模：{size.text}")
    req = archive.request_report(params, user=user, queue=False)
    archive_id = req.archive.id
    db.session.commit()
    # The job runs in its own app context and session: hold no transaction here.
    db.session.close()
    if not req.reused:
        # Rendered here, now; a queued twin no worker has taken yet is claimed here instead.
        jobs.run_now(current_app._get_current_object(), archive_id)
    db.session.remove()
    row = db.session.get(ReportArchive, archive_id)
    if row.status in ReportStatus.working():
        # A worker had it first: wait for it, as for our own.
        click.echo(f"同一报告正在由后台生成（存档 #{archive_id}），等待完成……", err=True)
        background.wait_until(lambda: _finished(archive_id), timeout=600, interval=1.0)
        db.session.remove()
        row = db.session.get(ReportArchive, archive_id)
    if row.status != ReportStatus.DONE:
        click.echo(f"生成失败（存档 #{row.id}）：{row.error}", err=True)
        sys.exit(1)
    try:
        content = archive.read_pdf(row)
    except (OSError, archive.ReportError) as exc:
        raise click.ClickException(getattr(exc, "message", None) or f"读取存档文件失败：{exc}") from None
    out.write_bytes(content)
    how = "输入未变化，直接使用已有存档" if req.reused else "已生成并存档"
    click.echo(f"{how}：{out}（{row.pages} 页，{row.size} 字节）")
    click.echo(archive.describe_archive(row))


@report_cli.command("verify")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def verify(path: Path):
    """校验 PDF 是否为未经改动的存档报告（按 sha256 查存档）。"""
    if not path.is_file():
        raise click.ClickException(f"文件不存在：{path}")
    matches = archive.verify_bytes(path.read_bytes())
    if not matches:
        click.echo(f"✗ {path} 不是未经改动的存档报告：存档中没有内容完全相同的报告（文件可能被修改过，或并非本系统生成）。",
                   err=True)
        sys.exit(1)
    click.echo(f"✓ {path} 是未经改动的存档报告。")
    for row in matches:
        click.echo(archive.describe_archive(row))


@report_cli.command("list")
@click.option("--limit", type=int, default=20, show_default=True)
def list_reports(limit: int):
    """列出最近的存档报告。"""
    for row in db.session.scalars(select(ReportArchive).order_by(ReportArchive.id.desc()).limit(limit)):
        click.echo(f"#{row.id}\t{row.kind_label}\t{row.status_label}\t截至 {row.params.get('as_of')}\t"
                   f"{format_local(row.created_at)}\t{row.filename or ''}\t{(row.sha256 or '')[:16]}")


def _finished(archive_id: int) -> bool:
    db.session.remove()
    return db.session.scalar(select(ReportArchive.status).where(ReportArchive.id == archive_id)) \
        not in ReportStatus.working()
