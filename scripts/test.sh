#!/usr/bin/env bash
# The test command: installs what it needs, lints, type-checks and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/ensure-tools.sh k8s helm kubeconform grpcurl ghz minio promtool prometheus-crds
bash scripts/ensure-postgres.sh
bash scripts/ensure-browser.sh
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy libs services operator/gouache_operator
echo "== import-linter"
.venv/bin/lint-imports
echo "== studio (tsc, eslint, vitest)"
bash scripts/build-studio.sh --check
echo "== pytest"
.venv/bin/pytest "$@"
