#!/usr/bin/env bash
# Builds gouache studio into the package (libs/gouache/edge/studio_dist, which the edge serves
# at /): `npm ci` when package-lock.json changed, then the type check and `vite build`.
# `--check` runs the studio's CI checks instead: tsc --noEmit, eslint and the vitest tests.
set -euo pipefail
cd "$(dirname "$0")/../studio"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "gouache studio needs Node.js 20.19 or newer and npm (not found on PATH)" >&2
  exit 1
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "gouache studio needs Node.js 20.19 or newer; this is $(node --version)" >&2
  exit 1
fi
stamp="node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi
if [ "${1:-}" = "--check" ]; then
  npm run --silent typecheck
  npm run --silent lint
  npm run --silent test
else
  npm run --silent build
fi
