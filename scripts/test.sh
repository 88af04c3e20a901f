#!/usr/bin/env bash
# The whole test suite, on SQLite and on a throw-away PostgreSQL server, the two
# runs side by side (each mostly waits on its own database); their outputs are
# printed one after the other once both are done. LUOSHI_TEST_SERIAL=1 runs them
# one after the other instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

source scripts/pg-temp.sh
pg_temp_start
# The runs' files in memory where the machine has it (as the PostgreSQL cluster): they are
# thrown away, and SQLite's and the file store's syncs to a disk were a good part of the run.
work=$(mktemp -d "$( [[ -d /dev/shm && -w /dev/shm ]] && echo /dev/shm || echo /tmp )/luoshi-test.XXXXXX")
trap 'pg_temp_stop; rm -rf "$work"' EXIT

run() {   # name, database URL, pytest arguments…
    local name=$1 url=$2
    shift 2
    # Each run its own temporary folder: pytest removes old ones it finds in a shared one.
    LUOSHI_TEST_DATABASE_URL="$url" .venv/bin/python -m pytest -q -p no:cacheprovider \
        --basetemp="$work/tmp-$name" "$@"
}

status=0
if [[ "${LUOSHI_TEST_SERIAL:-0}" == 1 ]]; then
    echo "==> 测试（SQLite）"
    run sqlite "" "$@" || status=$?
    echo "==> 测试（PostgreSQL）"
    run postgresql "$PG_TEMP_URL" "$@" || status=$?
    exit $status
fi

echo "==> 测试（SQLite 与 PostgreSQL 同时运行）"
run sqlite "" "$@" >"$work/sqlite.log" 2>&1 &
sqlite_pid=$!
run postgresql "$PG_TEMP_URL" "$@" >"$work/postgresql.log" 2>&1 &
pg_pid=$!
wait $sqlite_pid || status=$?
sqlite_status=$status
wait $pg_pid || status=$?
echo "==> 测试（SQLite）"
cat "$work/sqlite.log"
echo "==> 测试（PostgreSQL）"
cat "$work/postgresql.log"
[[ $sqlite_status == 0 ]] || status=$sqlite_status
exit $status
