"""A local mail server and group-robot receiver, for the demo and the tests:
real SMTP (aiosmtpd) and real HTTP on 127.0.0.1 that keep what they receive
(in memory, and as files when given a folder). ``flask mailsink`` runs both.

The robot receiver answers as 企业微信/钉钉 do ({"errcode": 0, "errmsg": "ok"});
``fail_with`` makes it answer otherwise (an HTTP status or an errcode), so a
test can watch a channel fail and be retried.
"""
from __future__ import annotations

import email
import email.policy
import json
import os
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    mails: list = field(default_factory=list)       # email.message.EmailMessage
    posts: list = field(default_factory=list)       # {"path", "query", "body"}
    lock: threading.Lock = field(default_factory=threading.Lock)

    def message_ids(self) -> list[str]:
        with self.lock:
            return [m["Message-ID"] for m in self.mails]


class MailSink:
    """aiosmtpd on 127.0.0.1:port (0: any free port)."""

    def __init__(self, port: int = 0, folder: str | None = None, received: Received | None = None):
        from aiosmtpd.controller import Controller

        self.received = received or Received()
        self.folder = folder
        if folder:
            os.makedirs(folder, exist_ok=True)
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                with sink.received.lock:
                    sink.received.mails.append(message)
                    number = len(sink.received.mails)
                name = None
                if sink.folder:
                    name = f"{time.strftime('%Y%m%d-%H%M%S')}-{number:05d}.eml"
                    with open(os.path.join(sink.folder, name), "wb") as fh:
                        fh.write(envelope.content)
                # ASCII: a client that did not ask for SMTPUTF8 gets nothing else.
                return f"250 OK message {number} accepted" + (f" as {name}" if name else "")

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port or _free_port())
        self.controller.start()
        self.port = self.controller.port

    def stop(self) -> None:
        self.controller.stop()


class RobotSink:
    """An HTTP server on 127.0.0.1:port that takes robot posts."""

    def __init__(self, port: int = 0, folder: str | None = None, received: Received | None = None):
        self.received = received or Received()
        self.folder = folder
        self.fail_with: int | dict | None = None     # an HTTP status, or a JSON answer
        if folder:
            os.makedirs(folder, exist_ok=True)
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = min(int(self.headers.get("Content-Length") or 0), 1024 * 1024)
                raw = self.rfile.read(length)
                url = urllib.parse.urlsplit(self.path)
                try:
                    body = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    body = None
                failing = sink.fail_with
                if isinstance(failing, int):
                    self.send_response(failing)
                    self.end_headers()
                    return
                with sink.received.lock:
                    if failing is None:
                        sink.received.posts.append({"path": url.path, "query": urllib.parse.parse_qs(url.query),
                                                    "body": body})
                    number = len(sink.received.posts)
                if sink.folder and failing is None:
                    with open(os.path.join(sink.folder, f"robot-{number:05d}.json"), "w", encoding="utf-8") as fh:
                        json.dump({"path": url.path, "body": body}, fh, ensure_ascii=False, indent=1)
                answer = failing if isinstance(failing, dict) else {"errcode": 0, "errmsg": "ok"}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="robot-sink", daemon=True)
        self.thread.start()

    def url(self, path: str = "/cgi-bin/webhook/send?key=test") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
