"""Commands for work off the request path: flask worker, flask reminders …,
flask notices …, flask mailsink."""
from __future__ import annotations

import signal
import sys
import threading
from datetime import date

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from models import Delivery, Notification, SweepRun, User
from workflow import background, reminders
from workflow.extensions import db
from workflow.notices import delivery as notice_delivery
from workflow.timeutil import format_local, today_local
from workflow.vocabulary import Channel, DeliveryStatus

reminders_cli = AppGroup("reminders", help="自动提醒与督办（见 docs/reminders.md）。")
notices_cli = AppGroup("notices", help="通知投递（邮件、工作群机器人）。")


@click.command("worker")
@with_appcontext
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64), help="同时执行的任务数。")
@click.option("--no-periodic", is_flag=True, help="不运行定时任务（多个 worker 时只需一个运行定时任务）。")
def worker(threads: int, no_periodic: bool):
    """后台处理程序：生成报告、发送通知、每日提醒巡查、定时调度。Ctrl+C 停止。"""
    app = current_app._get_current_object()
    try:
        background.huey_for(app)
    except RuntimeError as exc:     # an unreadable QUEUE_URL: say so, not a traceback
        raise click.ClickException(str(exc)) from None
    click.echo(f"后台处理程序启动：队列 {_describe_queue(background.queue_url(app))}，{threads} 个线程"
               f"{'' if no_periodic else '，含定时任务'}。")
    background.run_worker(app, workers=threads, periodic=not no_periodic)


def _describe_queue(url: str) -> str:
    if url.startswith("sqlite:///"):
        return f"SQLite 文件 {url[len('sqlite:///'):]}"
    return url.split("@")[-1] if "@" in url else url


@reminders_cli.command("run")
@click.option("--as-of", "as_of", default=None, help="按哪一天巡查（YYYY-MM-DD，默认今天，北京时间）。")
@click.option("--no-wait", is_flag=True, help="不等待通知发送完毕（交给后台处理程序）。")
def reminders_run(as_of: str | None, no_wait: bool):
    """立即运行一次提醒巡查（与每日定时巡查同一段代码），并等待其通知发送完毕。

    同一天已巡查过的提醒不会重复发送。退出码：0 成功；1 有通知发送失败或待重试；2 巡查出错。"""
    try:
        day = date.fromisoformat(as_of) if as_of else today_local()
    except ValueError:
        raise click.ClickException(f"日期“{as_of}”无效，请使用 YYYY-MM-DD 格式。") from None
    if day != today_local():
        click.echo(f"注意：按 {day.isoformat()} 巡查（今天是 {today_local().isoformat()}），提醒中的天数按该日计算。",
                   err=True)
    try:
        row = reminders.run_sweep(day, "cli", again=True)
    except reminders.SweepBusy:
        raise click.ClickException(f"{day.isoformat()} 的巡查正在由后台处理程序运行，请稍后再试。") from None
    except Exception as exc:
        click.echo(f"巡查出错：{type(exc).__name__}: {exc}", err=True)
        sys.exit(2)
    click.echo(f"巡查 {day.isoformat()}：检查 {row.checked} 项，发出提醒 {row.reminders} 条，新增督办 {row.escalations} 项，"
               f"定时发起调度 {row.rounds_opened} 轮。")
    if row.error:
        click.echo(f"  {row.error}", err=True)
    started = row.started_at
    db.session.commit()
    if no_wait:
        return
    # Deliver here what is due (a running worker shares the work: claims never overlap).
    notice_delivery.pump()
    db.session.remove()
    counts = dict(db.session.execute(select(Delivery.status, func.count(Delivery.id))
                                     .where(Delivery.created_at >= started).group_by(Delivery.status)).all())
    sent, failed = counts.get(DeliveryStatus.SENT, 0), counts.get(DeliveryStatus.FAILED, 0)
    waiting = counts.get(DeliveryStatus.PENDING, 0) + counts.get(DeliveryStatus.SENDING, 0)
    click.echo(f"通知投递：已发送 {sent}，失败 {failed}，待重试或静默时段后发送 {waiting}。")
    if failed or waiting:
        for d in db.session.scalars(select(Delivery).where(Delivery.created_at >= started,
                                                           Delivery.status != DeliveryStatus.SENT)
                                    .order_by(Delivery.id).limit(10)):
            click.echo(f"  #{d.id} {d.channel_label} {d.address}：{d.status_label}"
                       f"{'，下次 ' + format_local(d.next_attempt_at) if d.status == DeliveryStatus.PENDING else ''}"
                       f"{'（' + d.last_error + '）' if d.last_error else ''}", err=True)
        sys.exit(1)


@reminders_cli.command("list")
@click.option("--limit", default=10, show_default=True)
def reminders_list(limit: int):
    """最近的巡查记录。"""
    for row in db.session.scalars(select(SweepRun).order_by(SweepRun.as_of.desc()).limit(limit)):
        click.echo(f"{row.as_of}  {row.status_label}  检查 {row.checked}  提醒 {row.reminders}  督办 {row.escalations}  "
                   f"调度 {row.rounds_opened}  第 {row.attempts} 次  {row.requested_by}  "
                   f"{format_local(row.finished_at) or ''}{'  ' + row.error if row.error else ''}")


@notices_cli.command("log")
@click.option("--status", type=click.Choice(DeliveryStatus.values()), default=None, help="只看某一状态。")
@click.option("--channel", type=click.Choice(Channel.outside()), default=None)
@click.option("--limit", default=30, show_default=True)
def notices_log(status: str | None, channel: str | None, limit: int):
    """投递日志：每条邮件、机器人消息的状态、次数、服务器答复或失败原因。"""
    query = (select(Delivery).options(joinedload(Delivery.notification)).order_by(Delivery.id.desc()).limit(limit))
    if status:
        query = query.where(Delivery.status == status)
    if channel:
        query = query.where(Delivery.channel == channel)
    rows = db.session.scalars(query).all()
    if not rows:
        click.echo("（没有投递记录）")
    for d in rows:
        outcome = d.response if d.status == DeliveryStatus.SENT else (d.last_error or "")
        click.echo(f"#{d.id}  {format_local(d.created_at)}  {d.channel_label}  {d.address}  {d.status_label}  "
                   f"{d.attempts} 次  {d.notification.kind_label}：{d.notification.message[:40]}"
                   f"{'  — ' + outcome if outcome else ''}")
    totals = dict(db.session.execute(select(Delivery.status, func.count(Delivery.id)).group_by(Delivery.status)).all())
    click.echo("合计：" + "，".join(f"{DeliveryStatus.label_of(s)} {totals.get(s, 0)}" for s in DeliveryStatus.values()))
    unread = db.session.scalar(select(func.count(Notification.id)).where(Notification.read_at.is_(None)))
    click.echo(f"站内消息未读 {unread} 条。")


@notices_cli.command("test")
@click.argument("username")
def notices_test(username: str):
    """给某用户发一条测试通知（站内消息及其选择的渠道），并立即投递。"""
    from workflow import notices
    from workflow.vocabulary import NotificationKind

    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise click.ClickException(f"用户 {username} 不存在。")
    if not user.active:
        raise click.ClickException(f"用户 {username} 已停用，不接收通知。")
    [row] = notices.send([user], NotificationKind.REPORT, "这是一条测试通知：收到即说明通知渠道工作正常。")
    notification_id, user_id = row.id, user.id
    db.session.commit()
    click.echo(f"已写入 {user.display_name} 的站内消息。")
    notice_delivery.pump()
    db.session.remove()
    sent = db.session.scalars(select(Delivery).where(Delivery.notification_id == notification_id)
                              .order_by(Delivery.id)).all()
    for d in sent:
        click.echo(f"{d.channel_label} {d.address}：{d.status_label} {d.response or d.last_error or ''}".rstrip())
    if not sent:
        click.echo("没有站内消息以外的渠道：" + _why_no_channel(db.session.get(User, user_id)))


def _why_no_channel(user: User) -> str:
    from workflow import notices

    reasons = []
    if not notices.mail_configured():
        reasons.append("未配置邮件服务器（MAIL_SERVER）")
    elif not user.email:
        reasons.append("该用户未填写邮箱")
    elif not user.notify_email:
        reasons.append("该用户关闭了邮件通知")
    if not notices.robot_configured(user.unit):
        reasons.append("所在单位未配置工作群机器人")
    elif not user.notify_robot:
        reasons.append("该用户关闭了工作群通知")
    return "；".join(reasons) + "。"


@click.command("mailsink")
@click.option("--smtp-port", default=8025, show_default=True)
@click.option("--http-port", default=8026, show_default=True)
@click.option("--folder", default=None, help="收到的邮件和机器人消息存放目录（默认 instance/mailsink）。")
@with_appcontext
def mailsink(smtp_port: int, http_port: int, folder: str | None):
    """本机演示用的邮件服务器和工作群机器人接收端（只监听 127.0.0.1）。Ctrl+C 停止。"""
    import os

    from workflow.notices.sink import MailSink, RobotSink

    folder = folder or os.path.join(current_app.instance_path, "mailsink")
    mail = MailSink(smtp_port, folder=folder)
    robot = RobotSink(http_port, folder=folder)
    click.echo(f"本机邮件服务器 127.0.0.1:{mail.port}，机器人接收端 http://127.0.0.1:{robot.port}/ ，"
               f"收到的内容存于 {folder}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    mail.stop()
    robot.stop()


def register(app) -> None:
    for command in (worker, reminders_cli, notices_cli, mailsink):
        app.cli.add_command(command)
