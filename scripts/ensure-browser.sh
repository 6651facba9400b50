#!/usr/bin/env bash
# The studio's browser test drives headless Chromium from Debian's packages (/usr/bin/chromium)
# with Playwright; Playwright's own browser downloads are never used. Installs it if missing.
set -euo pipefail
if [ -x /usr/bin/chromium ] && /usr/bin/chromium --headless --version >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
/usr/bin/chromium --headless --version
