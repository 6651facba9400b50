#!/usr/bin/env bash
# Creates .venv with everything gouache needs; idempotent and cheap when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "gouache needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  # torch from PyPI is the CUDA build (~3 GB); pip's cache makes reinstalls fast.
  .venv/bin/pip install -q -e '.[ml,safety,embedded,operator,dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# gouache studio, the web app the edge serves at / (built into libs/gouache/edge/studio_dist).
# Without npm the mesh still runs, and / says how to build it.
# A failed build (no registry, an old Node) leaves the API working: say so and go on; CI's
# studio checks and browser test still fail on it.
if command -v npm >/dev/null 2>&1; then
  bash scripts/build-studio.sh || echo "warning: gouache studio did not build (see above); gouache up serves the API, and / says how to build the studio" >&2
else
  echo "npm not found: gouache studio is not built (scripts/build-studio.sh needs Node.js 20.19+)" >&2
fi
