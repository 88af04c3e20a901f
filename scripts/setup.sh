#!/usr/bin/env bash
# Installs everything Luoshi needs on a Debian machine: system packages (a CJK
# font and HarfBuzz subsetting for PDFs, LibreOffice to read old .doc/.wps files; for tests also PostgreSQL, Redis,
# poppler and Chromium) and the Python packages in .venv. Safe to run again: it only
# installs what is missing.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --test   runtime and what the test suite needs
set -euo pipefail
cd "$(dirname "$0")/.."

RUNTIME_PKGS=(fonts-noto-cjk libharfbuzz-subset0 libpango-1.0-0 libpangoft2-1.0-0 python3-venv
              libreoffice-writer-nogui)
TEST_PKGS=(postgresql redis-server poppler-utils chromium)

want=("${RUNTIME_PKGS[@]}")
[[ "${1:-}" == "--test" ]] && want+=("${TEST_PKGS[@]}")

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "==> 安装系统软件包：${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "==> 创建 Python 虚拟环境 .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
if [[ ! -f $stamp ]] || ! sha256sum --status -c "$stamp" 2>/dev/null; then
  echo "==> 安装 Python 依赖"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  sha256sum requirements.txt > "$stamp"
fi
