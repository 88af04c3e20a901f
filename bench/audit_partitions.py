"""Benchmark: would partitioning ``audit_entry`` by time help on PostgreSQL (issue 12)?

    .venv/bin/python bench/audit_partitions.py [--entries 540000] [--months 36] [--tasks 100000] [--repeat 200]

On a throw-away PostgreSQL server (scripts/pg-temp.sh) it migrates a database to get the real
``audit_entry`` definition, then fills two copies of it with the same synthetic entries, spread
evenly over --months months and over --tasks tasks:

  plain   – ``CREATE TABLE … (LIKE audit_entry INCLUDING ALL)``: the table as the app has it
            (unique seq and hash, its indexes);
  monthly – the same columns ``PARTITION BY RANGE (at)``, one partition per month, the same
            indexes; its unique keys must include ``at`` (PostgreSQL's rule for partitioned
            tables), so seq and hash are unique only together with the time.

and times, on each, the statements the app makes of the trail (median of --repeat, milliseconds):
the task page's timeline (one task's entries in chain order), the audit log's first page, the log
of one unit, the log of one month a year back (in seq order, and in time order as the app asks it
since this benchmark showed the walk), the log's capped count, one appended entry
(INSERT and COMMIT), and the walk of ``flask audit verify`` (every entry in seq order, once).
It also prints each copy's size. It asserts nothing; it prints figures.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

COLUMNS = ("seq, at, user_id, username, unit_id, ip, action, task_id, part_id, plan_id, from_state, to_state, "
           "reason, details, prev_hash, hash")


def fill(conn, table: str, entries: int, months: int, tasks: int) -> None:
    """``entries`` rows, seq 1…N, ``at`` rising evenly from 2020-01-01 over ``months`` months."""
    conn.exec_driver_sql(f"""
        INSERT INTO {table} ({COLUMNS})
        SELECT i, timestamp '2020-01-01' + (i::float8 / {entries}) * interval '{months} months',
               mod(i, 400) + 1, 'u' || (mod(i, 400) + 1), mod(i, 60) + 1, '127.0.0.1',
               (ARRAY['transition','progress','evidence_added','urge','task_state'])[mod(i, 5) + 1],
               mod(i::bigint * 7919, {tasks})::int + 1, mod(i::bigint * 7919, {tasks})::int + 1, mod(i, 519) + 1,
               'planned', 'in_progress', NULL, '{{"event": "start"}}'::json,
               md5((i - 1)::text) || md5((i - 1)::text), md5(i::text) || md5(i::text)
        FROM generate_series(1, {entries}) AS i""")


def create(conn, months: int) -> None:
    conn.exec_driver_sql("CREATE TABLE plain (LIKE audit_entry INCLUDING ALL)")
    conn.exec_driver_sql("CREATE TABLE monthly (LIKE audit_entry INCLUDING DEFAULTS) PARTITION BY RANGE (at)")
    conn.exec_driver_sql("ALTER TABLE monthly ADD UNIQUE (seq, at), ADD UNIQUE (hash, at)")
    for column in ("task_id", "part_id", "plan_id", "unit_id", "user_id", "action", "at"):
        conn.exec_driver_sql(f"CREATE INDEX ON monthly ({column})")
    for m in range(months + 1):
        year, month = 2020 + m // 12, m % 12 + 1
        nyear, nmonth = 2020 + (m + 1) // 12, (m + 1) % 12 + 1
        conn.exec_driver_sql(f"CREATE TABLE monthly_{m:03d} PARTITION OF monthly FOR VALUES FROM "
                             f"('{year}-{month:02d}-01') TO ('{nyear}-{nmonth:02d}-01')")


def median_ms(conn, sql: str, params, repeat: int) -> float:
    times = []
    for i in range(repeat):
        started = time.perf_counter()
        conn.exec_driver_sql(sql, params(i)).fetchall()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=540_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()

    from flask_migrate import upgrade
    from scale import PgTemp

    from workflow.app import create_app
    from workflow.extensions import db

    pg = PgTemp()
    try:
        folder = Path(tempfile.mkdtemp(prefix="audit-partitions-"))
        app = create_app({"SQLALCHEMY_DATABASE_URI": pg.url, "UPLOAD_FOLDER": str(folder / "uploads"),
                          "REPORT_FOLDER": str(folder / "reports")})
        with app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
            engine = db.engine
        with engine.begin() as conn:
            create(conn, args.months)
        started = time.perf_counter()
        with engine.begin() as conn:
            for table in ("plain", "monthly"):
                fill(conn, table, args.entries, args.months, args.tasks)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE plain")
            conn.exec_driver_sql("VACUUM ANALYZE monthly")
        print(f"{pg.version()}；{args.entries:,} 条审计记录，{args.months} 个月，{args.tasks:,} 个任务；"
              f"生成 {time.perf_counter() - started:.0f} 秒", flush=True)

        rng = random.Random(12)
        task_ids = [rng.randint(1, args.tasks) for _ in range(args.repeat)]
        unit_ids = [rng.randint(1, 60) for _ in range(args.repeat)]
        year_back = ("2021-12-01", "2022-01-01") if args.months >= 24 else ("2020-01-01", "2020-02-01")
        statements = [
            ("时间线（一个任务）", f"SELECT {COLUMNS} FROM {{t}} WHERE task_id = %(x)s ORDER BY seq",
             lambda i: {"x": task_ids[i]}),
            ("审计日志第一页", f"SELECT {COLUMNS} FROM {{t}} ORDER BY seq DESC LIMIT 30", lambda i: {}),
            ("某单位的日志第一页", f"SELECT {COLUMNS} FROM {{t}} WHERE unit_id = %(u)s ORDER BY seq DESC LIMIT 30",
             lambda i: {"u": unit_ids[i]}),
            ("一年前某月的日志第一页", f"SELECT {COLUMNS} FROM {{t}} WHERE at >= %(a)s AND at < %(b)s "
             "ORDER BY seq DESC LIMIT 30", lambda i: {"a": year_back[0], "b": year_back[1]}),
            ("同上，按时间排（应用的做法）", f"SELECT {COLUMNS} FROM {{t}} WHERE at >= %(a)s AND at < %(b)s "
             "ORDER BY at DESC, seq DESC LIMIT 30", lambda i: {"a": year_back[0], "b": year_back[1]}),
            ("日志计数（封顶 10,000）", "SELECT count(*) FROM (SELECT 1 FROM {t} LIMIT 10000) AS capped",
             lambda i: {}),
        ]
        results: dict[str, dict[str, float]] = {}
        with engine.connect() as conn:
            for name, sql, params in statements:
                for table in ("plain", "monthly"):
                    results.setdefault(name, {})[table] = median_ms(conn, sql.format(t=table), params, args.repeat)
            for table in ("plain", "monthly"):
                started = time.perf_counter()
                count = sum(1 for _ in conn.execution_options(stream_results=True, yield_per=5000)
                            .exec_driver_sql(f"SELECT {COLUMNS} FROM {table} ORDER BY seq"))
                results.setdefault(f"校验遍历（{count:,} 条，一次）", {})[table] = (time.perf_counter() - started) * 1000
                conn.rollback()
        with engine.connect() as conn:
            for table in ("plain", "monthly"):
                times = []
                for i in range(args.repeat):
                    seq = args.entries + 1 + i
                    started = time.perf_counter()
                    # The newest month (the last partition), as a new entry would be.
                    conn.exec_driver_sql(
                        f"INSERT INTO {table} ({COLUMNS}) VALUES (%(s)s, timestamp '2020-01-01' + %(m)s * "
                        f"interval '1 month' + interval '1 day', 1, 'u1', 1, '127.0.0.1', 'progress', 1, 1, 1, "
                        f"NULL, NULL, NULL, NULL, %(p)s, %(h)s)",
                        {"s": seq, "m": args.months, "p": f"p{seq}", "h": f"h{seq}"})
                    conn.commit()
                    times.append(time.perf_counter() - started)
                results.setdefault("追加一条（INSERT + COMMIT）", {})[table] = statistics.median(times) * 1000
            sizes = {table: conn.exec_driver_sql(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "LEFT JOIN pg_inherits i ON i.inhrelid = c.oid "
                "WHERE c.relname = %(t)s OR i.inhparent = %(t)s::regclass", {"t": table}).scalar()
                for table in ("plain", "monthly")}

        print(f"\n{'语句':<26} {'不分区 ms':>10} {'按月分区 ms':>12} {'分区/不分区':>10}")
        for name, by_table in results.items():
            plain, monthly = by_table["plain"], by_table["monthly"]
            print(f"{name:<26} {plain:10.2f} {monthly:12.2f} {monthly / plain if plain else float('nan'):10.2f}")
        print(f"{'大小（表与索引）':<26} {sizes['plain'] / 2**20:9.0f}M {sizes['monthly'] / 2**20:11.0f}M")
        print("\n说明：中位数，毫秒（校验遍历为一次的总时间）；按月分区的表 seq 与 hash 只能与 at 一起唯一。")
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
