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
# The runs' files beside the cluster (in memory where there is room): SQLite's and the file
# store's syncs to a disk were a good part of the run. A passing test's folder is removed
# as it ends (pytest.ini: tmp_path_retention_policy), so the runs hold little at a time.
work=$(mktemp -d "$(scratch_parent)/luoshi-test.XXXXXX")
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
