"""Scale benchmark (issue 12): Luoshi under gunicorn against a bare Flask + SQLAlchemy
app on the same database of ~20k / 50k / 100k tasks, SQLite and PostgreSQL.

    .venv/bin/python bench/scale.py --tasks 100000 --db sqlite|postgresql|both
                                    [--clients 8] [--seconds 20] [--keep DIR] [--reuse DIR]

The data set (bench/scale_data.py): the seed plan (193 tasks) with the demo activity,
copied into as many plans as --tasks needs (519 plans = 100,167 tasks) by bulk
INSERT … SELECT with id offsets, plus audit entries (about --audit-per-task per task,
5.4 by default like the issue's 539,070 for 100,170 tasks), appended to the hash chain
in Python so that ``flask audit verify`` passes (--verify-audit checks it).
SQLite: a file as the instance folder holds it (WAL, no ANALYZE); PostgreSQL: a
throw-away server from scripts/pg-temp.sh, ANALYZEd after the load.
--keep DIR saves what was generated (scale-<tasks>.sqlite, scale-<tasks>.pgdump);
--reuse DIR takes it from there when present (else generates and saves it there).
Every run works on a scratch copy (SQLite: a file copy; PostgreSQL: pg_restore
into a fresh temp server), so the writes of one run never reach the next.

Servers: ours is ``gunicorn --workers 2 --threads 4 --timeout 120 wsgi:app`` as
scripts/run.sh runs it (LUOSHI_ENV=demo, LUOSHI_TODAY=2022-09-30); bare is
bench/scale_bare.py under the same gunicorn options (see its docstring: the same
main query of each page, the same rows, a minimal HTML, no login, no CSRF).

Load: a closed loop of N client threads (http.client, a new connection per request);
each sends its next request when the last one is answered, for --seconds (requests in
flight are waited for, up to --timeout), with 1 client and with --clients clients.
Ours is logged in through the real login form (CSRF) as ``office`` or as the staff
account (uNN.staff) of the unit with the most parts.

Pages (ours → bare):
  task-staff   /tasks/<id> as the unit's staff (tasks it leads or works on, rotating over
               200 of them) → /tasks/<id>: task, parts, timeline
  task-office  /tasks/<id> as office (200 tasks over all plans)     → the same
  list-state   /tasks/?state=in_progress as office                  → first page, 30 tasks
  list-all     /tasks/ as office (every task, newest plan first)    → first page, 30 tasks
  todo-staff   /tasks/todo (我的待办) as the staff                   → /todo?unit=U
  todo-office  /tasks/todo (待办结 + colour counts) as office        → /tasks/?state=verified
  overview     /overview (总览) as office                            → the GROUP BY aggregates
  audit        /audit (审计日志) as office                           → first page, 30 entries
  write        POST …/parts/<id>/receive (签收) by the staff of each part's unit, each part
               received once (planned, not yet received; clients spread over the units
               with most such parts) → POST /receive/<id>: lock audit head, UPDATE
               task_part, INSERT the chained audit_entry, UPDATE audit_head, on the very
               parts ours received
  mixed        task-staff's reads with a 签收 as every 10th request of each client (the write
               pool's parts, any unit): a kept task page holds only until its own task is
               written, so this shows what writes elsewhere cost the readers → the same mix
               of bare task pages and bare writes

Columns:
  page, cl      the page and the number of clients
  p50 p95       latency percentiles in ms (ours, then bare)
  req/s         requests answered per second over the cell's wall time
  ours/bare     throughput ratio, ours req/s ÷ bare req/s (1.00: as fast as bare)
  SQL           statements per request, ours/bare, counted in-process (Flask test client,
                one warm request, SQLAlchemy before_cursor_execute; BEGIN/COMMIT/PRAGMA
                not counted) — separately from the timing
  KB            HTML bytes per response (ours/bare; for writes, the 302 or "ok")
  err           requests that failed (HTTP status other than expected, timeout, reset)
After the write rows: how many of the parts ours was sent are received in the database.

Ours and bare run cell by cell, back to back (ours 1 client, bare 1 client, ours N,
bare N), so that other work on the machine weighs on both alike: the ratio is the
steadier figure; the machine's load average is printed before and after the cells.

It asserts nothing; it prints figures.
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
PASSWORD = "demo-2026"
TODAY = "2022-09-30"
LIST_STATE = "in_progress"
#: The mixed cell: every this many requests of a client, one is a write (the others task pages).
MIXED_EVERY = 10
PAGES = ["task-staff", "task-office", "list-state", "list-all", "todo-staff", "todo-office", "overview", "audit"]
SKIPPED_SQL = ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "SAVEPOINT", "RELEASE")


# ---------------------------------------------------------------- PostgreSQL (scripts/pg-temp.sh)

class PgTemp:
    def __init__(self):
        out = subprocess.run(
            ["bash", "-c", f'source "{ROOT}/scripts/pg-temp.sh" && pg_temp_start >&2 && '
                           f'printf "%s\\n%s\\n%s\\n" "$PG_TEMP_DIR" "$PG_TEMP_BIN" "$PG_TEMP_URL"'],
            capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit("PostgreSQL 临时服务器未能启动：\n" + out.stderr[-2000:])
        self.dir, self.bin, self.url = out.stdout.split("\n")[:3]

    def version(self) -> str:
        return subprocess.run([f"{self.bin}/postgres", "--version"], capture_output=True, text=True).stdout.strip()

    def dump(self, path: Path) -> None:
        subprocess.run([f"{self.bin}/pg_dump", "-Fc", "-f", str(path), "-d", self.url], check=True)

    def restore(self, path: Path) -> None:
        subprocess.run([f"{self.bin}/pg_restore", "--no-owner", "-j", "2", "-d", self.url, str(path)], check=True)
        subprocess.run([f"{self.bin}/psql", "-q", "-d", self.url, "-c", "ANALYZE"], check=True)

    def size(self) -> int:
        out = subprocess.run([f"{self.bin}/psql", "-At", "-d", self.url, "-c",
                              "SELECT pg_database_size(current_database())"], capture_output=True, text=True)
        return int(out.stdout.strip() or 0)

    def stop(self) -> None:
        subprocess.run(["bash", "-c", f'source "{ROOT}/scripts/pg-temp.sh"; PG_TEMP_DIR="{self.dir}"; '
                                      f'PG_TEMP_BIN="{self.bin}"; PG_TEMP_AS=(); '
                                      f'[[ $(id -u) -eq 0 ]] && PG_TEMP_AS=(runuser -u postgres --); pg_temp_stop'])


# ---------------------------------------------------------------- the data set

def prepare(kind: str, args, scratch: Path, pg: PgTemp | None) -> tuple[str, dict | None, float]:
    """(database URL, generation stats or None when reused, seconds spent)."""
    from scale_data import generate

    started = time.perf_counter()
    cache_dir = args.reuse or args.keep
    cached = cache_dir / (f"scale-{args.tasks}.sqlite" if kind == "sqlite" else f"scale-{args.tasks}.pgdump") \
        if cache_dir else None
    folder = scratch / kind
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'bench.sqlite'}" if kind == "sqlite" else pg.url
    if args.reuse and cached.exists():
        print(f"  取用已存的数据集 {cached}", flush=True)
        if kind == "sqlite":
            shutil.copyfile(cached, folder / "bench.sqlite")
        else:
            pg.restore(cached)
        _upgrade(url, folder)
        return url, None, time.perf_counter() - started
    quiet = io.StringIO()   # alembic's INFO lines
    with contextlib.redirect_stderr(quiet):
        stats = generate(url, folder, args.tasks, args.audit_per_task,
                         log=lambda *a, **k: print(*a, **k, file=sys.stdout))
    if cached is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        if kind == "sqlite":
            shutil.copyfile(folder / "bench.sqlite", cached)
        else:
            pg.dump(cached)
        print(f"  数据集已存至 {cached}", flush=True)
    return url, stats, time.perf_counter() - started


def _upgrade(url: str, folder: Path) -> None:
    """A data set kept by an earlier version gets the migrations written since (new indexes)."""
    from flask_migrate import upgrade
    from scale_data import make_app

    from workflow.sqlite import write_transactions

    with contextlib.redirect_stderr(io.StringIO()):     # alembic's INFO lines
        app = make_app(url, folder)
        with app.app_context():
            write_transactions(True)
            try:
                upgrade()
            finally:
                write_transactions(False)


def facts(url: str) -> dict:
    """Counts, the staff account, the task ids and the write pool, read with plain SQLAlchemy."""
    from sqlalchemy import create_engine, text

    from workflow.config import normalise_database_url

    engine = create_engine(normalise_database_url(url))
    with engine.connect() as c:
        q = lambda sql, **p: c.execute(text(sql), p).all()  # noqa: E731
        f = {"tasks": q("SELECT count(*) FROM task")[0][0], "parts": q("SELECT count(*) FROM task_part")[0][0],
             "audit": q("SELECT count(*) FROM audit_entry")[0][0], "plans": q("SELECT count(*) FROM plan")[0][0]}
        unit = q("SELECT unit_id FROM task_part GROUP BY unit_id ORDER BY count(*) DESC, unit_id LIMIT 1")[0][0]
        f["unit"] = unit
        f["staff"] = q('SELECT username FROM "user" WHERE unit_id = :u AND role = \'unit_staff\' ORDER BY id LIMIT 1',
                       u=unit)[0][0]
        rnd = random.Random(12)
        all_ids = [r[0] for r in q("SELECT id FROM task ORDER BY id")]
        f["office_tasks"] = rnd.sample(all_ids, min(200, len(all_ids)))
        mine = [r[0] for r in q("SELECT id FROM task WHERE id IN (SELECT task_id FROM task_part WHERE unit_id = :u) "
                                "OR id IN (SELECT task_id FROM task_lead_unit WHERE unit_id = :u) ORDER BY id", u=unit)]
        f["staff_tasks"] = rnd.sample(mine, min(200, len(mine)))
        pool: dict[int, list] = {}
        for part_id, task_id, unit_id, version in q(
                "SELECT id, task_id, unit_id, version FROM task_part WHERE state = 'planned' AND received_at IS NULL "
                "ORDER BY id"):
            pool.setdefault(unit_id, []).append((part_id, task_id, version))
        staff = {}
        for unit_id, name, user_id in q("SELECT unit_id, username, id FROM \"user\" WHERE role = 'unit_staff' ORDER BY id"):
            staff.setdefault(unit_id, (name, user_id))
        f["pool"] = {u: parts for u, parts in pool.items() if u in staff}
        f["unit_staff"] = staff
    engine.dispose()
    return f


def received(url: str, part_ids: list[int]) -> int:
    from sqlalchemy import bindparam, create_engine, text

    from workflow.config import normalise_database_url

    if not part_ids:
        return 0
    engine = create_engine(normalise_database_url(url))
    with engine.connect() as c:
        n = c.execute(text("SELECT count(*) FROM task_part WHERE received_at IS NOT NULL AND id IN :ids")
                      .bindparams(bindparam("ids", expanding=True)), {"ids": part_ids}).scalar()
    engine.dispose()
    return n


# ---------------------------------------------------------------- SQL per request (in-process)

class Counter:
    def __init__(self):
        self.n = 0

    def __call__(self, conn, cursor, statement, *args):
        if not statement.lstrip().upper().startswith(SKIPPED_SQL):
            self.n += 1


def sql_counts(url: str, scratch: Path, f: dict) -> dict[str, tuple]:
    """{page: (ours statements, bare statements)}; consumes one part of the write pool."""
    from sqlalchemy import event

    from workflow.app import create_app
    from workflow.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "LUOSHI_ENV": "demo", "LUOSHI_TODAY": TODAY,
                      "SECRET_KEY": "bench-scale", "UPLOAD_FOLDER": str(scratch / "uploads"),
                      "REPORT_FOLDER": str(scratch / "reports"), "LOGIN_CLIENT_LIMIT": "100000 per hour",
                      "QUEUE_URL": f"sqlite:///{scratch / 'queue-inproc.sqlite3'}"})

    def login(client, username):
        page = client.get("/auth/login").get_data(as_text=True)
        r = client.post("/auth/login", data={"csrf_token": CSRF_RE.search(page).group(1), "username": username,
                                             "password": PASSWORD})
        assert r.status_code == 302, f"login {username}: {r.status_code}"
        return CSRF_RE.search(client.get("/tasks/").get_data(as_text=True)).group(1)

    counter = Counter()
    out = {}
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", counter)
    office, staff = app.test_client(), app.test_client()
    login(office, "office")
    staff_csrf = login(staff, f["staff"])
    ours = {"task-staff": (staff, f"/tasks/{f['staff_tasks'][0]}"), "task-office": (office, f"/tasks/{f['office_tasks'][0]}"),
            "list-state": (office, f"/tasks/?state={LIST_STATE}"), "list-all": (office, "/tasks/"),
            "todo-staff": (staff, "/tasks/todo"), "todo-office": (office, "/tasks/todo"),
            "overview": (office, "/overview"), "audit": (office, "/audit")}
    for page, (client, path) in ours.items():
        client.get(path)
        counter.n = 0
        r = client.get(path)
        out[page] = [counter.n if r.status_code == 200 else f"HTTP{r.status_code}"]
    unit, (part_id, task_id, version) = _pool_part(f, f["unit"])
    write_client, csrf = (staff, staff_csrf) if unit == f["unit"] else (app.test_client(), None)
    if csrf is None:
        csrf = login(write_client, f["unit_staff"][unit][0])
    counter.n = 0
    r = write_client.post(f"/tasks/{task_id}/parts/{part_id}/receive", data={"csrf_token": csrf, "version": version})
    out["write"] = [counter.n if r.status_code == 302 else f"HTTP{r.status_code}"]
    with app.app_context():
        db.session.remove()
        db.engine.dispose()

    # The bare app in a process of its own: this one has the project's engine events (workflow/sqlite.py).
    bare_paths = {"task-staff": f"/tasks/{f['staff_tasks'][0]}", "task-office": f"/tasks/{f['office_tasks'][0]}",
                  "list-state": f"/tasks/?state={LIST_STATE}", "list-all": "/tasks/",
                  "todo-staff": f"/todo?unit={f['unit']}", "todo-office": "/tasks/?state=verified",
                  "overview": "/overview", "audit": "/audit"}
    posts = {"write": f"/receive/{part_id}?user={f['unit_staff'][unit][1]}"}
    env = dict(os.environ, DATABASE_URL=url, BARE_TODAY=TODAY)
    result = subprocess.run([sys.executable, __file__, "--bare-sql-counts", json.dumps([bare_paths, posts])],
                            env=env, capture_output=True, text=True)
    counts = json.loads(result.stdout) if result.returncode == 0 else {}
    for page in out:
        out[page].append(counts.get(page, "?"))
    return {k: tuple(v) for k, v in out.items()}


def bare_sql_counts(spec: str) -> None:
    """(In a process of its own.) Statements per request of the bare app, as JSON."""
    from sqlalchemy import event

    import scale_bare

    gets, posts = json.loads(spec)
    counter = Counter()
    event.listen(scale_bare.engine, "before_cursor_execute", counter)
    client = scale_bare.app.test_client()
    out = {}
    for page, path in gets.items():
        client.get(path)
        counter.n = 0
        r = client.get(path)
        out[page] = counter.n if r.status_code == 200 else f"HTTP{r.status_code}"
    for page, path in posts.items():
        client.post(path)   # warm (the bare app caches the user's name), then the same row again
        counter.n = 0
        r = client.post(path)
        out[page] = counter.n if r.status_code == 200 else f"HTTP{r.status_code}"
    scale_bare.engine.dispose()
    print(json.dumps(out))


def _pool_part(f: dict, prefer: int):
    unit = prefer if f["pool"].get(prefer) else max(f["pool"], key=lambda u: len(f["pool"][u]))
    return unit, f["pool"][unit].pop(0)


# ---------------------------------------------------------------- servers and clients

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app_spec: str, url: str, scratch: Path, name: str, args) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log = scratch / f"gunicorn-{name}.log"
    env = dict(os.environ, LUOSHI_ENV="demo", LUOSHI_TODAY=TODAY, SECRET_KEY="bench-scale", DATABASE_URL=url,
               BARE_TODAY=TODAY, UPLOAD_FOLDER=str(scratch / "uploads"), REPORT_FOLDER=str(scratch / "reports"),
               QUEUE_URL=f"sqlite:///{scratch / 'queue.sqlite3'}", LOGIN_CLIENT_LIMIT="100000 per hour",
               LOGIN_BACKOFF="100000 per hour")
    for var in ("LUOSHI_TEST_DATABASE_URL", "MAIL_SERVER"):
        env.pop(var, None)
    gunicorn = Path(sys.executable).parent / "gunicorn"
    chdir = ["--chdir", str(BENCH)] if app_spec.startswith("scale_bare") else []
    proc = subprocess.Popen(
        [str(gunicorn), "--workers", str(args.workers), "--threads", str(args.threads), "--timeout", "120",
         "--bind", f"127.0.0.1:{port}", *chdir, app_spec],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    raise SystemExit(f"gunicorn ({name}) did not start:\n" + log.read_text(errors="replace")[-3000:])


def stop_server(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


class Client:
    """http.client with one site's cookies; a new connection per request."""

    def __init__(self, port: int, timeout: float):
        self.port, self.timeout = port, timeout
        self.cookies: dict[str, str] = {}
        self.csrf = None

    def request(self, method: str, path: str, form: dict | None = None, keep_cookies: bool = True):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if keep_cookies:
                for header in response.headers.get_all("Set-Cookie") or []:
                    for name, morsel in SimpleCookie(header).items():
                        if morsel.value and morsel["expires"] != "Thu, 01 Jan 1970 00:00:00 GMT":
                            self.cookies[name] = morsel.value
                        else:
                            self.cookies.pop(name, None)
            return response.status, response.headers.get("Location", ""), data
        finally:
            conn.close()

    def login(self, username: str) -> Client:
        for _ in range(20):
            try:
                _, _, page = self.request("GET", "/auth/login")
                token = CSRF_RE.search(page.decode()).group(1)
                status, location, _ = self.request("POST", "/auth/login", {
                    "csrf_token": token, "username": username, "password": PASSWORD})
                if status == 302 and "/auth/login" not in location:
                    _, _, page = self.request("GET", "/tasks/")
                    self.csrf = CSRF_RE.search(page.decode()).group(1)
                    return self
            except (OSError, http.client.HTTPException, AttributeError):
                pass
            time.sleep(0.5)
        raise SystemExit(f"cannot log in as {username}")


class Cell:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors = 0
        self.bytes: list[int] = []
        self.elapsed = 0.0

    def p(self, q: float) -> float:
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")

    @property
    def rps(self) -> float:
        ok = len(self.latencies) - self.errors
        return ok / self.elapsed if self.elapsed else 0.0

    @property
    def kb(self) -> float:
        return sum(self.bytes) / len(self.bytes) / 1024 if self.bytes else float("nan")


def run_cell(work, clients: int, seconds: float) -> Cell:
    """Closed loop: ``work(i, n)`` sends client i's n-th request and returns
    (ok, bytes), or None when it has nothing left to send."""
    cell = Cell()
    stop = time.monotonic() + seconds

    def loop(i: int) -> None:
        n = 0
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                result = work(i, n)
                if result is None:
                    return
                ok, size = result
            except (OSError, http.client.HTTPException):
                ok, size = False, None
            elapsed = time.perf_counter() - started
            with cell.lock:
                cell.latencies.append(elapsed)
                if not ok:
                    cell.errors += 1
                if size is not None:
                    cell.bytes.append(size)
            n += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cell.elapsed = time.perf_counter() - t0
    return cell


def get_work(clients: list[Client], paths: list[str]):
    def work(i: int, n: int):
        status, _, data = clients[i].request("GET", paths[(i * 37 + n) % len(paths)])
        return status == 200, len(data)
    return work


# ---------------------------------------------------------------- one database

def bench_database(kind: str, args, scratch_root: Path) -> None:
    import sqlite3

    scratch = scratch_root / kind
    scratch.mkdir()
    pg = PgTemp() if kind == "postgresql" else None
    ours_proc = bare_proc = None
    try:
        print(f"\n=== {kind}：准备数据集（--tasks {args.tasks}）", flush=True)
        url, stats, prep_seconds = prepare(kind, args, scratch, pg)
        if stats:
            print(f"  生成用时 {stats['seconds']:.0f} 秒（种子 {stats['seed_seconds']:.0f}，复制 {stats['copy_seconds']:.0f}，"
                  f"审计链 {stats['audit_seconds']:.0f}" + (f"，ANALYZE {stats['analyze_seconds']:.0f}" if pg else "") +
                  f" 秒）；连同存档共 {prep_seconds:.0f} 秒", flush=True)
        else:
            print(f"  取用用时 {prep_seconds:.0f} 秒", flush=True)
        if args.verify_audit:
            from scale_data import verify_chain

            t = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):
                problems = verify_chain(url, scratch / kind)
            print(f"  审计链校验（flask audit verify 的检查）：{'完好' if not problems else problems[:3]}，"
                  f"用时 {time.perf_counter() - t:.0f} 秒", flush=True)
        f = facts(url)
        size = (scratch / kind / "bench.sqlite").stat().st_size if kind == "sqlite" else pg.size()
        version = f"SQLite {sqlite3.sqlite_version}" if kind == "sqlite" else pg.version()
        pool_total = sum(len(v) for v in f["pool"].values())
        print(f"  {version}；{f['plans']} 个方案，{f['tasks']} 个任务，{f['parts']} 个承办，{f['audit']} 条审计记录，"
              f"{size / 1e6:.0f} MB；单位经办人 {f['staff']}（单位 {f['unit']}）；待签收可写 {pool_total} 项", flush=True)
        # Evidence files are not copied: no measured page reads them.
        t = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):
            sql = sql_counts(url, scratch, f)
        print(f"  每请求 SQL 已计（进程内，{time.perf_counter() - t:.0f} 秒）", flush=True)

        ours_proc, ours_port = start_server("wsgi:app", url, scratch, "ours", args)
        bare_proc, bare_port = start_server("scale_bare:app", url, scratch, "bare", args)
        n = max(args.clients, 1)
        office = [Client(ours_port, args.timeout).login("office") for _ in range(n)]
        staff = [Client(ours_port, args.timeout).login(f["staff"]) for _ in range(n)]
        bare = [Client(bare_port, args.timeout) for _ in range(n)]
        ours_pages = {"task-staff": (staff, [f"/tasks/{i}" for i in f["staff_tasks"]]),
                      "task-office": (office, [f"/tasks/{i}" for i in f["office_tasks"]]),
                      "list-state": (office, [f"/tasks/?state={LIST_STATE}"]),
                      "list-all": (office, ["/tasks/"]),
                      "todo-staff": (staff, ["/tasks/todo"]), "todo-office": (office, ["/tasks/todo"]),
                      "overview": (office, ["/overview"]), "audit": (office, ["/audit"])}
        bare_pages = {"task-staff": [f"/tasks/{i}" for i in f["staff_tasks"]],
                      "task-office": [f"/tasks/{i}" for i in f["office_tasks"]],
                      "list-state": [f"/tasks/?state={LIST_STATE}"], "list-all": ["/tasks/"],
                      "todo-staff": [f"/todo?unit={f['unit']}"], "todo-office": ["/tasks/?state=verified"],
                      "overview": ["/overview"], "audit": ["/audit"]}
        levels = sorted({1, args.clients})
        rows = []
        print(f"  测量：每格 {args.seconds:g} 秒，客户端 {'、'.join(map(str, levels))} 个；"
              f"机器负载 {os.getloadavg()[0]:.2f}", flush=True)
        for page in args.pages:
            clients, paths = ours_pages[page]
            run_cell(get_work(clients, paths), args.workers, 0.01)   # warm-up: one request per worker
            run_cell(get_work(bare, bare_pages[page]), args.workers, 0.01)
            for c in levels:
                ours = run_cell(get_work(clients, paths), c, args.seconds)
                base = run_cell(get_work(bare, bare_pages[page]), c, args.seconds)
                rows.append((page, c, ours, base, sql.get(page, ("?", "?"))))
                print_row(*rows[-1], header=len(rows) == 1)

        if args.write or args.mixed:
            # Round robin over the units, so that consecutive writes are of different units.
            queues = [deque((u, *p) for p in f["pool"][u]) for u in sorted(f["pool"])]
            pool = deque()
            while any(queues):
                for q in queues:
                    if q:
                        pool.append(q.popleft())
            share = len(pool) // (len(levels) * (args.write + args.mixed))
            sessions: dict[int, Client] = {}   # one logged-in staff session per unit, shared by the threads
            sent: list[tuple[int, int]] = []   # (part id, staff user id)
            lock = threading.Lock()

            def session(u: int) -> Client:
                with lock:
                    if u not in sessions:
                        sessions[u] = Client(ours_port, args.timeout).login(f["unit_staff"][u][0])
                    return sessions[u]

            for u in {p[0] for p in list(pool)[:2 * share]}:
                session(u)

            def ours_write_of(mine):
                def ours_write(i, n):
                    with lock:
                        if len(mine) >= share or not pool:
                            return None
                        u, part_id, task_id, version = pool.popleft()
                        mine.append((part_id, f["unit_staff"][u][1]))
                    w = session(u)
                    status, location, data = w.request("POST", f"/tasks/{task_id}/parts/{part_id}/receive",
                                                       {"csrf_token": w.csrf, "version": version}, keep_cookies=False)
                    return status == 302 and f"/tasks/{task_id}" in location, len(data)
                return ours_write

            def bare_write_of(mine, c):
                def bare_write(i, n):
                    if not mine:
                        return None
                    part_id, user_id = mine[(n * c + i) % len(mine)]
                    status, _, data = bare[i].request("POST", f"/receive/{part_id}?user={user_id}")
                    return status == 200, len(data)
                return bare_write

            def mixed(write, read):
                """Every MIXED_EVERY-th request of a client a write, the others reads; ends with the writes."""
                return lambda i, n: write(i, n // MIXED_EVERY) if n % MIXED_EVERY == MIXED_EVERY - 1 else read(i, n)

            for name in ("write", "mixed"):
                if not getattr(args, name):
                    continue
                for c in levels:
                    mine: list[tuple[int, int]] = []
                    if name == "write":
                        ours_work, bare_work = ours_write_of(mine), bare_write_of(mine, c)
                    else:
                        paths = ours_pages["task-staff"][1]
                        ours_work = mixed(ours_write_of(mine), get_work(staff, paths))
                        bare_work = mixed(bare_write_of(mine, c), get_work(bare, bare_pages["task-staff"]))
                    ours = run_cell(ours_work, c, args.seconds)
                    sent += mine
                    base = run_cell(bare_work, c, args.seconds)
                    rows.append((name, c, ours, base, sql.get(name, ("-", "-"))))
                    print_row(*rows[-1], header=not rows[:-1])
            done = received(url, [p for p, _ in sent])
            print(f"  写：我们共发出 {len(sent)} 次签收，数据库中已签收 {done} 项（可签收的承办 {pool_total} 项，"
                  f"每格至多用 {share} 项，用完即停；裸应用重写我们签收过的同一批行）", flush=True)
        print(f"  测量结束时机器负载 {os.getloadavg()[0]:.2f}（1 分钟平均）", flush=True)
    finally:
        stop_server(ours_proc)
        stop_server(bare_proc)
        if pg is not None:
            pg.stop()


def _ms(x: float) -> str:
    return f"{x:.1f}" if x < 1000 else f"{x:.0f}"


def _rate(x: float) -> str:
    return f"{x:.1f}" if x >= 1 else f"{x:.2f}"


def print_row(page, c, ours: Cell, base: Cell, sql, header: bool) -> None:
    if header:
        print(f"\n  {'page':<12}{'cl':>3} | {'ours p50':>9}{'p95':>9}{'req/s':>7} | {'bare p50':>9}{'p95':>9}"
              f"{'req/s':>7} | {'ours/bare':>9} | {'SQL':>9} | {'KB':>13} | {'err':>7}")
    ratio = ours.rps / base.rps if base.rps else float("nan")
    err = f"{ours.errors}/{base.errors}"
    print(f"  {page:<12}{c:>3} | {_ms(ours.p(0.5)):>9}{_ms(ours.p(0.95)):>9}{_rate(ours.rps):>7} | "
          f"{_ms(base.p(0.5)):>9}{_ms(base.p(0.95)):>9}{_rate(base.rps):>7} | {ratio:>9.2f} | "
          f"{f'{sql[0]}/{sql[1]}':>9} | {f'{ours.kb:.1f}/{base.kb:.1f}':>13} | {err:>7}", flush=True)


def main() -> int:
    if sys.argv[1:2] == ["--bare-sql-counts"]:
        bare_sql_counts(sys.argv[2])
        return 0
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20000, help="约多少个任务（种子方案 193 个，按需复制）")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--clients", type=int, default=8, help="并发客户端数（另测 1 个客户端）")
    parser.add_argument("--seconds", type=float, default=20.0, help="每格测量秒数")
    parser.add_argument("--timeout", type=float, default=300.0, help="单个请求最长等待秒数")
    parser.add_argument("--audit-per-task", type=float, default=5.4, help="每个任务约多少条审计记录")
    parser.add_argument("--keep", type=Path, help="把生成的数据集存入此目录")
    parser.add_argument("--reuse", type=Path, help="从此目录取用已存的数据集（没有则生成并存入）")
    parser.add_argument("--verify-audit", action="store_true", help="生成后校验审计链（flask audit verify 的检查）")
    parser.add_argument("--pages", default=",".join(PAGES + ["write", "mixed"]),
                        help="只测这些页面（逗号分隔）：" + ",".join(PAGES + ["write", "mixed"]))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    chosen = [p.strip() for p in args.pages.split(",") if p.strip()]
    unknown = set(chosen) - set(PAGES) - {"write", "mixed"}
    if unknown:
        parser.error(f"unknown pages: {', '.join(sorted(unknown))}")
    args.write, args.mixed = "write" in chosen, "mixed" in chosen
    args.pages = [p for p in PAGES if p in chosen]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"机器：{os.cpu_count()} 核，开始时负载 {load:.2f}；Python {sys.version.split()[0]}；"
          f"gunicorn --workers {args.workers} --threads {args.threads}（两个应用相同）", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="luoshi-scale-"))
    try:
        for kind in (("sqlite", "postgresql") if args.db == "both" else (args.db,)):
            bench_database(kind, args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("\n说明：p50/p95 毫秒；req/s 每秒应答的请求；ours/bare 吞吐比；SQL 每请求语句数（进程内计，我们/裸）；"
          "KB 每个响应的 HTML；err 失败请求（我们/裸）。见文件开头的说明。")
    return 0


if __name__ == "__main__":
    sys.exit(main())
