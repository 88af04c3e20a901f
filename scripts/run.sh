#!/usr/bin/env bash
# One command from a fresh checkout to a running Luoshi on the embedded
# default: SQLite in instance/, the seed compilation and demo accounts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export FLASK_APP=wsgi.py
export LUOSHI_ENV=${LUOSHI_ENV:-demo}
# The demo's story runs from April to September 2022 (workflow/demo_activity.py):
# its clock stands on the story's last day, so that deadlines and colours read as
# they did then. Demo mode only; production always runs on the real date.
export LUOSHI_TODAY=${LUOSHI_TODAY:-2022-09-30}
mkdir -p instance
# A real random key, kept across restarts so that logins survive them.
[[ -s instance/secret_key ]] || .venv/bin/python -c "import secrets; print(secrets.token_hex(32))" > instance/secret_key
export SECRET_KEY=${SECRET_KEY:-$(cat instance/secret_key)}

PORT=${PORT:-5000}
# Notices beyond the inbox go to a mail server and robot receiver on this machine
# (`flask mailsink`, what they receive is kept in instance/mailsink/); a real
# deployment sets MAIL_SERVER etc. instead (README, "生产部署").
export MAIL_SERVER=${MAIL_SERVER:-127.0.0.1} MAIL_PORT=${MAIL_PORT:-8025} MAIL_FROM=${MAIL_FROM:-luoshi@demo.luoshi.local}
export PUBLIC_URL=${PUBLIC_URL:-http://127.0.0.1:${PORT}}
# The demo delivers at any hour; production keeps the default quiet hours.
export QUIET_HOURS=${QUIET_HOURS-}

.venv/bin/flask db upgrade
.venv/bin/flask demo

# The mail sink, the worker (the queue is a SQLite file in instance/) and the web
# server run side by side; Ctrl+C (or the end of this script) stops all three.
pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT INT TERM
.venv/bin/flask mailsink --smtp-port "$MAIL_PORT" --http-port 8026 & pids+=($!)
.venv/bin/flask worker --threads 2 & pids+=($!)
echo
echo "落实已启动：http://127.0.0.1:${PORT}/  （Ctrl+C 停止）"
.venv/bin/gunicorn --workers 2 --threads 4 --timeout 120 --bind "127.0.0.1:${PORT}" wsgi:app & pids+=($!)
wait -n "${pids[@]}"
