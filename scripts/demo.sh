#!/usr/bin/env bash
# The main job: set up, start the embedded mesh, stylize a bundled image through the REST API.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/gouache demo -o "${1:-stylized.png}"
