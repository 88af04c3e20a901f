"""The outside channels: an e-mail over SMTP, a post to a group robot's webhook
(企业微信 or 钉钉 markdown). Each ``send_*`` returns the server's answer or
raises ChannelError with the reason in Chinese for the delivery log.

User text reaches these messages only through Jinja's autoescape (the HTML
part), as plain text (the text part, headers folded by the e-mail library,
line breaks removed from the subject) or markdown-escaped (robots), so no
message can carry a link, a tag or a header the app did not write.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, format_datetime, localtime

from flask import current_app

from workflow.timeutil import format_local
from workflow.vocabulary import NotificationKind, RobotKind

SUBJECT_MAX = 120
# One plain address (no display name, no second recipient, no line break).
_ADDRESS = re.compile(r"[^@\s,;<>()\[\]\\\"]+@[^@\s,;<>()\[\]\\\"]+")


class ChannelError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class Content:
    """What one notice says, channel-neutral."""
    kind_label: str
    message: str
    task_label: str | None
    task_text: str | None
    link: str
    created: str
    recipient: str


def content_of(notification, recipient_name: str) -> Content:
    task = notification.task
    base = (current_app.config.get("PUBLIC_URL") or "http://127.0.0.1:5000").rstrip("/")
    link = f"{base}/tasks/{task.id}" if task is not None else f"{base}/inbox/"
    return Content(kind_label=NotificationKind.label_of(notification.kind), message=notification.message,
                   task_label=f"{task.number_label} {task.label}" if task is not None else None,
                   task_text=task.text[:300] if task is not None else None, link=link,
                   created=format_local(notification.created_at), recipient=recipient_name)


# Every character str.splitlines() breaks at (the e-mail library refuses a header
# holding any of them), and tabs.
_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\x1c-\x1e\x85\u2028\u2029]+")


def _one_line(text: str) -> str:
    return _LINE_BREAKS.sub(" ", text).strip()


# ------------------------------------------------------------------ e-mail

def build_email(content: Content, to_address: str, message_id: str) -> EmailMessage:
    config = current_app.config
    msg = EmailMessage()
    subject = f"【落实】{content.kind_label}：{content.message}"
    msg["Subject"] = _one_line(subject)[:SUBJECT_MAX]
    msg["From"] = formataddr(("落实督办系统", config.get("MAIL_FROM") or "luoshi@localhost"))
    if not _ADDRESS.fullmatch(to_address or ""):
        raise ChannelError(f"收件地址无效：{_one_line(to_address or '')[:100]}")
    msg["To"] = to_address
    # The same Message-ID on every try: a receiving system that saw it already drops a resend.
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(localtime())
    msg["Auto-Submitted"] = "auto-generated"
    env = current_app.jinja_env
    # base64: 7-bit on the wire, so a server that does not announce 8BITMIME takes it as sent.
    msg.set_content(env.get_template("notices/email.txt").render(c=content), cte="base64")
    msg.add_alternative(env.get_template("notices/email.html").render(c=content), subtype="html", cte="base64")
    return msg


def send_email(msg: EmailMessage) -> str:
    config = current_app.config
    host, port = config.get("MAIL_SERVER"), int(config.get("MAIL_PORT") or 25)
    timeout = float(config.get("MAIL_TIMEOUT", 10))
    if not host:
        raise ChannelError("未配置邮件服务器（MAIL_SERVER）。")
    try:
        if config.get("MAIL_USE_SSL"):
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if config.get("MAIL_USE_TLS") and not config.get("MAIL_USE_SSL"):
                smtp.starttls(context=ssl.create_default_context())
            if config.get("MAIL_USERNAME"):
                smtp.login(config["MAIL_USERNAME"], config.get("MAIL_PASSWORD") or "")
            # The steps of send_message, to keep the server's answer to DATA for the log.
            smtp.ehlo_or_helo_if_needed()
            sender = config.get("MAIL_FROM") or "luoshi@localhost"
            code, answer = smtp.mail(sender)
            if code != 250:
                raise ChannelError(f"邮件服务器拒绝发件人 {sender}：{code} {_decode(answer)}")
            code, answer = smtp.rcpt(msg["To"])
            if code not in (250, 251):
                raise ChannelError(f"收件地址被拒收：{msg['To']}（{code} {_decode(answer)}）")
            code, answer = smtp.data(msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")))
            if code != 250:
                raise ChannelError(f"邮件服务器拒收：{code} {_decode(answer)}")
            return f"{host}:{port} {code} {_decode(answer)}"[:400]
    except ChannelError:
        raise
    except smtplib.SMTPRecipientsRefused as exc:
        raise ChannelError(f"收件地址被拒收：{', '.join(exc.recipients)}") from None
    except smtplib.SMTPAuthenticationError:
        raise ChannelError("邮件服务器登录失败（用户名或密码错误）。") from None
    except smtplib.SMTPResponseException as exc:
        raise ChannelError(f"邮件服务器返回错误 {exc.smtp_code}：{_decode(exc.smtp_error)}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise ChannelError(f"无法连接邮件服务器 {host}:{port}：{network_reason(exc)}") from None


def network_reason(exc: BaseException) -> str:
    """Why a connection failed, in Chinese first (the office reads the log), then the system's words."""
    if isinstance(exc, ConnectionRefusedError):
        reason = "连接被拒绝（服务未启动或端口错误）"
    elif isinstance(exc, (socket.timeout, TimeoutError)):
        reason = "连接超时"
    elif isinstance(exc, socket.gaierror):
        reason = "无法解析主机名"
    elif isinstance(exc, ssl.SSLError):
        reason = "加密连接（TLS）失败"
    elif isinstance(exc, smtplib.SMTPServerDisconnected):
        reason = "服务器中途断开了连接"
    elif isinstance(exc, ConnectionError):
        reason = "连接中断"
    else:
        reason = "网络错误"
    detail = str(exc).strip()
    return f"{reason}（{type(exc).__name__}{': ' + detail[:200] if detail else ''}）"


def _decode(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# ------------------------------------------------------------------ group robots

def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~])")


def markdown_escape(text: str) -> str:
    """Plain text for a robot's markdown: no link, emphasis, heading or tag of its own."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN.sub(r"\\\1", text)


# 企业微信 refuses markdown over 4096 bytes (errcode 40058), which no retry mends.
ROBOT_MAX_BYTES = 4000


def robot_payload(kind: str, content: Content, delivery_id: int) -> dict:
    head = [f"**【落实】{markdown_escape(content.kind_label)}**", ""]
    tail = ["", f"> 任务：{markdown_escape(_clip(content.task_label, 200))}"] if content.task_label else []
    tail += ["", f"[查看与办理（需登录）]({content.link})", "", f"通知编号 {delivery_id} · {content.created}"]
    budget = ROBOT_MAX_BYTES - len("\n".join(head + tail).encode("utf-8")) - 1
    message = content.message
    body = markdown_escape(message)
    while len(body.encode("utf-8")) > budget and message:
        # Cut the text, not its escaped form: an escape is never split in two.
        message = message[:max(len(message) - max(len(message) // 10, 1), 0)]
        body = markdown_escape(message) + "…（全文请登录查看）"
    text = "\n".join(head + [body] + tail)
    if kind == RobotKind.DINGTALK:
        return {"msgtype": "markdown", "markdown": {"title": f"【落实】{content.kind_label}", "text": text}}
    return {"msgtype": "markdown", "markdown": {"content": text}}


def signed_url(url: str, secret: str | None, now_ms: int | None = None) -> str:
    """钉钉 加签: timestamp and HmacSHA256(secret, "timestamp\\nsecret"), base64, URL-encoded."""
    if not secret:
        return url
    timestamp = str(now_ms if now_ms is not None else int(time.time() * 1000))
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode("utf-8"), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest))
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp}&sign={sign}"


def check_robot_url(url: str) -> str | None:
    """Why a webhook address cannot be used, or None."""
    parsed = urllib.parse.urlsplit(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return "机器人地址应以 https:// 开头（内网测试可用 http://）。"
    if parsed.username or parsed.password:
        return "机器人地址不能包含用户名或密码。"
    return None


def send_robot(kind: str, url: str, secret: str | None, payload: dict) -> str:
    why = check_robot_url(url)
    if why:
        raise ChannelError(why)
    timeout = float(current_app.config.get("ROBOT_TIMEOUT", 10))
    target = signed_url(url, secret) if kind == RobotKind.DINGTALK else url
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(target, data=body, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8"})
    try:
        # No redirects followed and no proxy from the environment: the post goes where the unit said.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
        with opener.open(request, timeout=timeout) as response:
            raw = response.read(64 * 1024)
            status = response.status
    except urllib.error.HTTPError as exc:
        raise ChannelError(f"机器人接口返回 HTTP {exc.code}") from None
    except (urllib.error.URLError, socket.timeout, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ChannelError(f"无法连接机器人接口：{network_reason(reason if isinstance(reason, BaseException) else exc)}") \
            from None
    try:
        answer = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ChannelError(f"机器人接口的答复无法识别（HTTP {status}）") from None
    errcode = answer.get("errcode") if isinstance(answer, dict) else None
    if errcode != 0:
        errmsg = str(answer.get("errmsg", ""))[:200] if isinstance(answer, dict) else ""
        raise ChannelError(f"机器人接口拒绝：errcode {errcode} {errmsg}".strip())
    return f"HTTP {status} errcode 0"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
