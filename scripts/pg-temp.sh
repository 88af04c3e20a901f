# Source me. Starts a private PostgreSQL cluster in a temporary folder,
# reachable only through a Unix socket there, and removes it on stop.

# Where throw-away files go: memory (/dev/shm) where the machine has room there, else /tmp.
# On a disk each test's CREATE DATABASE from its template cost 0.26 s of waiting on writes
# (0.04 s in memory); a container's /dev/shm is often 64 MB, too small for a test run.
scratch_parent() {
  local free_kb
  free_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 {print $4}')
  if [[ -w /dev/shm && ${free_kb:-0} -ge $((4 * 1024 * 1024)) ]]; then echo /dev/shm; else echo /tmp; fi
}

pg_temp_start() {
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n "$bindir" ]] || { echo "未找到 PostgreSQL 服务器（请运行 scripts/setup.sh --test）" >&2; return 1; }
  PG_TEMP_DIR=$(mktemp -d "$(scratch_parent)/luoshi-pg.XXXXXX")
  local as=()
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres: "$PG_TEMP_DIR"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$bindir/initdb" -D "$PG_TEMP_DIR/data" -U luoshi -A trust -E UTF8 --no-locale >/dev/null
  "${as[@]}" "$bindir/pg_ctl" -D "$PG_TEMP_DIR/data" -l "$PG_TEMP_DIR/log" -w \
      -o "-k $PG_TEMP_DIR -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_wal_size=256MB -c max_connections=60" start >/dev/null
  "${as[@]}" "$bindir/createdb" -h "$PG_TEMP_DIR" -U luoshi luoshi_test
  PG_TEMP_BIN=$bindir
  PG_TEMP_AS=("${as[@]}")
  export PG_TEMP_URL="postgresql://luoshi@/luoshi_test?host=$PG_TEMP_DIR"
}

pg_temp_stop() {
  [[ -n "${PG_TEMP_DIR:-}" ]] || return 0
  "${PG_TEMP_AS[@]}" "$PG_TEMP_BIN/pg_ctl" -D "$PG_TEMP_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_TEMP_DIR"
}
