"""Load test: gunicorn (threaded workers, as scripts/run.sh runs them) on a big SQLite database.

    .venv/bin/python bench/sqlite_load.py [--factor 20] [--bursts 12] [--burst-seconds 2]
                                          [--clients 8] [--idle 5] [--sustained 30] [--db FILE] [--keep DIR]

Builds a scratch database (the seed plan with the demo activity, its plan copied
``--factor`` times, ``--audit`` extra audit entries; or copies ``--db``), starts
``gunicorn --workers 2 --threads 4 wsgi:app`` on it with PYTHONFAULTHANDLER=1,
logs ``--clients`` browsers in as ``office`` through the login form (CSRF), and
hammers the audit log and other pages:

  1. ``--bursts`` bursts of ``--burst-seconds`` seconds, ``--pause`` seconds apart
     (the load that killed workers with SIGSEGV, issue 7);
  2. ``--sustained`` seconds without a pause, then ``--idle`` seconds of nothing
     (how the WAL grows under load and whether it is checkpointed afterwards).

It prints requests, errors, p50/p95 latency, worker crashes (gunicorn's
"was sent SIGSEGV" and faulthandler's "Fatal Python error" lines, with the first
traceback) and the size of the WAL file over time. It asserts nothing.

Diagnostics (environment): SQLITE_LOAD_GUNICORN_ARGS adds gunicorn options
(e.g. ``-c conf.py`` with a post_worker_init hook), SQLITE_LOAD_APP replaces
``wsgi:app``; PYTHONMALLOC=debug is passed on to the workers like any variable.
"""
from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
PASSWORD = "demo-2026"
# Mostly the audit log (where the crashes were seen), some other read pages.
PAGES = ["/audit", "/audit?page=2", "/audit", "/audit?page=5", "/", "/tasks/", "/audit", "/overview",
         "/inbox", "/plans/", "/audit?action=login", "/tasks/todo"]


# ---------------------------------------------------------------- the database

def build(folder: Path, factor: int, extra_audit: int) -> Path:
    from sqlalchemy import func, select

    from report_bench import build_seed, make_app, multiply_plan

    app = make_app(folder)
    started = time.perf_counter()
    build_seed(app)
    if factor > 1:
        multiply_plan(app, factor)
    from models import AuditEntry, Task, User
    from workflow import audit
    from workflow.sqlite import write_transactions
    from workflow.extensions import db

    with app.app_context():
        write_transactions(True)
        users = db.session.scalars(select(User).order_by(User.id)).all()
        tasks = db.session.scalars(select(Task.id).order_by(Task.id)).all()
        for n in range(extra_audit):
            user = users[n % len(users)]
            audit.append("urge", user=user, task=db.session.get(Task, tasks[n % len(tasks)]),
                         details={"message": f"请加快进度（基准 {n}）"}, ip="127.0.0.1")
            if n % 2000 == 1999:
                db.session.commit()
        db.session.commit()
        counts = (db.session.scalar(select(func.count(Task.id))),
                  db.session.scalar(select(func.count(AuditEntry.id))))
        db.session.remove()
        db.engine.dispose()
        write_transactions(False)
    print(f"数据库已建：{counts[0]} 个任务，{counts[1]} 条审计记录，"
          f"{(folder / 'bench.sqlite').stat().st_size / 1e6:.1f} MB，用时 {time.perf_counter() - started:.0f} 秒",
          flush=True)
    return folder / "bench.sqlite"


# ---------------------------------------------------------------- the server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db_path: Path, folder: Path, port: int, workers: int, threads: int) -> tuple[subprocess.Popen, Path]:
    log = folder / "gunicorn.log"
    env = dict(os.environ, PYTHONFAULTHANDLER="1", LUOSHI_ENV="demo", SECRET_KEY="bench-sqlite-load",
               DATABASE_URL=f"sqlite:///{db_path}", UPLOAD_FOLDER=str(folder / "uploads"),
               REPORT_FOLDER=str(folder / "reports"))
    env.pop("LUOSHI_TEST_DATABASE_URL", None)
    gunicorn = Path(sys.executable).parent / "gunicorn"
    proc = subprocess.Popen(
        [str(gunicorn), "--workers", str(workers), "--threads", str(threads), "--timeout", "120",
         "--bind", f"127.0.0.1:{port}", *os.environ.get("SQLITE_LOAD_GUNICORN_ARGS", "").split(), os.environ.get("SQLITE_LOAD_APP", "wsgi:app")],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, log
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start:\n" + log.read_text(errors="replace")[-3000:])


class Browser:
    """http.client with one site's cookies (python-requests is not installed)."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, str, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    if morsel.value and morsel["expires"] != "Thu, 01 Jan 1970 00:00:00 GMT":
                        self.cookies[name] = morsel.value
                    else:
                        self.cookies.pop(name, None)
            return response.status, response.headers.get("Location", ""), text
        finally:
            conn.close()

    def login(self, username: str) -> None:
        for _ in range(20):   # a worker may be restarting
            try:
                _, _, page = self.request("GET", "/auth/login")
                token = CSRF_RE.search(page).group(1)
                status, location, _ = self.request("POST", "/auth/login", {
                    "csrf_token": token, "username": username, "password": PASSWORD})
                if status == 302 and "/auth/login" not in location:
                    _, _, page = self.request("GET", "/tasks/")
                    self.csrf = CSRF_RE.search(page).group(1)
                    return
            except (OSError, http.client.HTTPException, AttributeError):
                pass
            time.sleep(0.5)
        raise SystemExit(f"cannot log in as {username}")


# ---------------------------------------------------------------- the load

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}

    def add(self, seconds: float, error: str | None) -> None:
        with self.lock:
            self.latencies.append(seconds)
            if error:
                self.errors[error] = self.errors.get(error, 0) + 1

    def summary(self) -> str:
        lat = sorted(self.latencies)
        if not lat:
            return "0 个请求"
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
        errors = sum(self.errors.values())
        detail = "，".join(f"{k} ×{v}" for k, v in sorted(self.errors.items())) or "无"
        return (f"{len(lat)} 个请求，错误 {errors}（{detail}），p50 {p(0.5):.0f} ms，p95 {p(0.95):.0f} ms，"
                f"最慢 {lat[-1] * 1000:.0f} ms")


def hammer(browsers: list[Browser], seconds: float, stats: Stats, writers: int = 0,
           task_ids: list[int] | None = None) -> None:
    """Every client loops over PAGES; the first ``writers`` of them urge a
    task (POST: an audit entry and notifications) between two pages."""
    stop = time.monotonic() + seconds

    def client(i: int, browser: Browser) -> None:
        n = i
        while time.monotonic() < stop:
            write = i < writers and n % 2 == 1 and task_ids
            path = PAGES[n % len(PAGES)]
            n += 1
            started = time.perf_counter()
            error = None
            try:
                if write:
                    task_id = task_ids[(n * 7919 + i) % len(task_ids)]
                    status, _, _ = browser.request("POST", f"/tasks/{task_id}/urge", {
                        "csrf_token": browser.csrf, "message": f"请加快进度（压测 {n}）"})
                    if status != 302:
                        error = f"POST HTTP {status}"
                else:
                    status, _, _ = browser.request("GET", path)
                    if status != 200:
                        error = f"HTTP {status}"
            except (OSError, http.client.HTTPException) as exc:
                error = type(exc).__name__
            stats.add(time.perf_counter() - started, error)

    threads = [threading.Thread(target=client, args=(i, b)) for i, b in enumerate(browsers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class WalWatch(threading.Thread):
    """Samples the size of the -wal file every 0.25 s."""

    def __init__(self, db_path: Path):
        super().__init__(daemon=True)
        self.wal = Path(str(db_path) + "-wal")
        self.samples: list[tuple[float, int]] = []
        self.running = True
        self.t0 = time.monotonic()

    def size(self) -> int:
        try:
            return self.wal.stat().st_size
        except FileNotFoundError:
            return 0

    def run(self) -> None:
        while self.running:
            self.samples.append((time.monotonic() - self.t0, self.size()))
            time.sleep(0.25)

    def between(self, start: float, end: float) -> list[int]:
        return [s for t, s in self.samples if start <= t < end] or [self.size()]


def crashes(log: Path, since: int = 0) -> tuple[int, int, str]:
    text = log.read_text(errors="replace")[since:]
    segv = len(re.findall(r"was sent SIGSEGV", text))
    fatal = len(re.findall(r"Fatal Python error", text))
    first = ""
    m = re.search(r"Fatal Python error.*?(?=\n\[\d{4}-|\Z)", text, re.S)
    if m:
        first = m.group(0)[:6000]
    return segv, fatal, first


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def main() -> int:
    # SIGTERM (timeout, kill) unwinds like Ctrl+C, so gunicorn is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=int, default=20, help="种子方案复制倍数（默认 20，约 4 千任务）")
    parser.add_argument("--audit", type=int, default=20000, help="另加的审计记录条数")
    parser.add_argument("--db", type=Path, help="用现成的数据库文件（复制后使用），不新建")
    parser.add_argument("--keep", type=Path, help="把建好的数据库复制到此路径，供下次 --db 使用")
    parser.add_argument("--log", type=Path, help="把 gunicorn 的日志（含 faulthandler 输出）复制到此路径")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--writers", type=int, default=2, help="其中几个客户端在两页之间催办一个任务（写）")
    parser.add_argument("--bursts", type=int, default=12)
    parser.add_argument("--burst-seconds", type=float, default=2.0)
    parser.add_argument("--pause", type=float, default=1.0)
    parser.add_argument("--sustained", type=float, default=30.0)
    parser.add_argument("--idle", type=float, default=5.0)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="luoshi-sqlite-load-"))
    proc = None
    try:
        if args.db:
            db_path = scratch / "bench.sqlite"
            shutil.copyfile(args.db, db_path)
        else:
            db_path = build(scratch, args.factor, args.audit)
            if args.keep:
                shutil.copyfile(db_path, args.keep)
        import sqlite3

        print(f"Python {sys.version.split()[0]}，SQLite {sqlite3.sqlite_version}；gunicorn --workers {args.workers} "
              f"--threads {args.threads}；{args.clients} 个客户端；数据库 {mb(db_path.stat().st_size)}", flush=True)
        with sqlite3.connect(db_path) as conn:
            task_ids = [r[0] for r in conn.execute("SELECT id FROM task WHERE state != 'closed' ORDER BY id")]
        conn.close()
        print(f"其中 {args.writers} 个客户端在两页之间催办任务（POST，写审计与通知）", flush=True)
        port = free_port()
        proc, log = start_server(db_path, scratch, port, args.workers, args.threads)
        browsers = [Browser(port) for _ in range(args.clients)]
        for b in browsers:
            b.login("office")
        for b in browsers:   # warm up both workers (imports, templates)
            b.request("GET", "/audit")
        watch = WalWatch(db_path)
        watch.start()

        print(f"\n1) {args.bursts} 轮突发，每轮 {args.burst_seconds:g} 秒，间隔 {args.pause:g} 秒")
        burst_stats = Stats()
        mark = len(log.read_text(errors="replace"))
        for n in range(1, args.bursts + 1):
            t0 = time.monotonic() - watch.t0
            stats = Stats()
            hammer(browsers, args.burst_seconds, stats, args.writers, task_ids)
            burst_stats.latencies += stats.latencies
            for k, v in stats.errors.items():
                burst_stats.errors[k] = burst_stats.errors.get(k, 0) + v
            segv, fatal, _ = crashes(log, mark)
            wal = watch.between(t0, time.monotonic() - watch.t0)
            print(f"  第 {n:>2} 轮：{stats.summary()}；累计 SIGSEGV {segv}；WAL 最大 {mb(max(wal))}", flush=True)
            time.sleep(args.pause)
        segv_bursts, fatal_bursts, first = crashes(log, mark)
        print(f"  合计：{burst_stats.summary()}")
        print(f"  工作进程崩溃：SIGSEGV {segv_bursts} 次（faulthandler 报告 {fatal_bursts} 次）", flush=True)

        print(f"\n2) 持续 {args.sustained:g} 秒不停，之后空闲 {args.idle:g} 秒")
        mark2 = len(log.read_text(errors="replace"))
        t0 = time.monotonic() - watch.t0
        stats = Stats()
        step = 5.0
        left = args.sustained
        while left > 0:
            t = time.monotonic() - watch.t0
            hammer(browsers, min(step, left), stats, args.writers, task_ids)
            left -= step
            print(f"  {t - t0 + min(step, left + step):>5.0f} 秒：WAL {mb(watch.size())}"
                  f"（本段最大 {mb(max(watch.between(t, time.monotonic() - watch.t0)))}）", flush=True)
        t_end = time.monotonic() - watch.t0
        print(f"  负载：{stats.summary()}")
        idle_start = time.monotonic()
        while time.monotonic() - idle_start < args.idle:
            time.sleep(1.0)
            print(f"  空闲 {time.monotonic() - idle_start:>4.0f} 秒：WAL {mb(watch.size())}", flush=True)
        segv2, fatal2, first2 = crashes(log, mark2)
        watch.running = False
        during = watch.between(t0, t_end)
        print(f"  WAL：负载前 {mb(watch.between(0, t0 + 0.3)[-1])}，负载中最大 {mb(max(during))}，"
              f"负载结束 {mb(during[-1])}，空闲 {args.idle:g} 秒后 {mb(watch.size())}")
        print(f"  工作进程崩溃：SIGSEGV {segv2} 次（faulthandler 报告 {fatal2} 次）")
        first = first or first2
        if first:
            print("\n第一次崩溃时 faulthandler 的输出（节选）：")
            print(first)
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if args.log and (scratch / "gunicorn.log").exists():
            shutil.copyfile(scratch / "gunicorn.log", args.log)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
