#!/usr/bin/env bash
# The chart checks CI runs (scripts/test.sh runs them with the rest), for a person:
#   helm lint --strict with every values file; helm template over the matrix
#   (charts/gouache/ci/*.yaml and values-dev.yaml); kubeconform -strict with schemas made
#   offline from a simulated kube-apiserver's /openapi/v2; kubectl apply --dry-run=server of
#   each rendered entry with the CRDs installed; the edge the chart renders against the one
#   `gouache up` renders, validated by envoy; the Dockerfiles with hadolint.
#
#   bash scripts/check-chart.sh            # extra arguments go to pytest, e.g. -x -k dry_run
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-tools.sh k8s helm kubeconform prometheus-crds
helm=.tools/bin/helm
for values in charts/gouache/ci/*.yaml charts/gouache/values-dev.yaml; do
  printf '== helm lint --strict -f %s\n' "$values"
  if ! out=$("$helm" lint --strict charts/gouache -f "$values" 2>&1); then
    printf '%s\n' "$out" >&2
    exit 1
  fi
done
echo "== pytest (matrix, kubeconform, dry-run, edge, Dockerfiles)"
exec .venv/bin/pytest tests/unit/chart tests/unit/bus tests/integration/chart -q "$@"
