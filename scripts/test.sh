#!/usr/bin/env bash
# The whole test suite, on SQLite and then on a throw-away PostgreSQL server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

status=0
echo "==> 测试（SQLite）"
LUOSHI_TEST_DATABASE_URL= .venv/bin/python -m pytest -q "$@" || status=$?

echo "==> 测试（PostgreSQL）"
source scripts/pg-temp.sh
pg_temp_start
trap pg_temp_stop EXIT
LUOSHI_TEST_DATABASE_URL="$PG_TEMP_URL" .venv/bin/python -m pytest -q "$@" || status=$?
exit $status
