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

.venv/bin/flask db upgrade
.venv/bin/flask demo
PORT=${PORT:-5000}
echo
echo "落实已启动：http://127.0.0.1:${PORT}/  （Ctrl+C 停止）"
exec .venv/bin/gunicorn --workers 2 --threads 4 --timeout 120 --bind "127.0.0.1:${PORT}" wsgi:app
