#!/usr/bin/env bash
# Install what the Nengo GUI browser test (tests/test_gui.py) needs; idempotent.
#
#   * Debian's chromium (apt) when /usr/bin/chromium is missing -- needs root
#     or sudo; Playwright's own browser download (`playwright install`) is
#     never used.
#   * Playwright for Python (pip) into the given Python (default: .venv/bin/python).
#
# Usage: tests/setup_browser.sh [PYTHON]
set -euo pipefail
PYTHON="${1:-.venv/bin/python}"

if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if ! "$PYTHON" -c "import playwright" 2>/dev/null; then
    "$PYTHON" -m pip install --quiet "playwright>=1.40"
fi
echo "browser test set-up ok: $(/usr/bin/chromium --version 2>/dev/null || echo chromium?)"
