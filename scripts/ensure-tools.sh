#!/usr/bin/env bash
# Builds the Go tools the tests and the chart need from the Go module proxy into a cache,
# and links them into .tools/bin/. Idempotent: a tool already built at its pinned version is
# only linked. Versions, flags and build times: ../shared/reference/k8s-toolchain/README.md.
#
#   bash scripts/ensure-tools.sh              # every tool
#   bash scripts/ensure-tools.sh k8s          # what the k8s tests need (a simulated cluster)
#   bash scripts/ensure-tools.sh helm grpcurl # named tools
#
# The cache is ${GOUACHE_TOOLS_CACHE:-~/.cache/gouache/tools}/<tool>-<version>/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

K8S_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.22.0
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c  # the last snapshot; upstream is archived
KUBECONFORM_VERSION=v0.8.0
GRPCURL_VERSION=v1.9.4
GHZ_VERSION=v0.93.0
PROMETHEUS_VERSION=v0.316.0            # the Go module of Prometheus v3.16.0: promtool
PROMETHEUS_OPERATOR_VERSION=v0.85.0    # the newest root module the proxy serves: its CRDs

cache=${GOUACHE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gouache/tools}
bin="$root/.tools/bin"
mkdir -p "$cache" "$bin"

# One build at a time per cache (a test run and a shell may both ask for the tools); the
# second waits, then finds the tools built.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/.lock"
  flock 9
fi

if ! command -v go >/dev/null 2>&1; then
  echo "ensure-tools: Go is needed to build the tools (https://go.dev/dl/); none on PATH" >&2
  exit 1
fi
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

log() { printf '== tools: %s\n' "$*"; }

# link NAME DIR: expose DIR/NAME as .tools/bin/NAME.
link() { ln -sfn "$2/$1" "$bin/$1"; }

# have NAME DIR: true when DIR/NAME was built completely (the stamp is written last).
have() { [ -x "$2/$1" ] && [ -f "$2/.built-$1" ]; }

# go_install NAME VERSION PACKAGE [LDFLAGS]: `go install PACKAGE@VERSION` into the cache.
go_install() {
  local name=$1 version=$2 package=$3 ldflags=${4:-}
  local dir="$cache/$name-$version"
  if ! have "$name" "$dir"; then
    log "building $name $version (go install $package)"
    local start=$SECONDS
    mkdir -p "$dir"
    GOBIN="$dir" go install -trimpath -ldflags="-s -w $ldflags" "$package@$version"
    touch "$dir/.built-$name"
    log "$name built in $((SECONDS - start)) s"
  fi
  link "$name" "$dir"
}

build_etcd() {
  local dir="$cache/etcd-$ETCD_VERSION"
  if ! have etcd "$dir"; then
    log "building etcd $ETCD_VERSION"
    local start=$SECONDS work
    work=$(mktemp -d)
    cp scripts/tools/etcd.go.mod "$work/go.mod"
    cp scripts/tools/etcd.go.sum "$work/go.sum"
    mkdir -p "$dir"
    (cd "$work" && go build -trimpath -ldflags="-s -w" -o "$dir/etcd" go.etcd.io/etcd/server/v3)
    rm -rf "$work"
    touch "$dir/.built-etcd"
    log "etcd built in $((SECONDS - start)) s"
  fi
  link etcd "$dir"
}

# The Kubernetes binaries share one throwaway module pinned to k8s.io/kubernetes.
build_k8s() {
  local dir="$cache/kubernetes-$K8S_VERSION" name missing=()
  for name in "$@"; do have "$name" "$dir" || missing+=("$name"); done
  if [ ${#missing[@]} -gt 0 ]; then
    local work minor ldflags pkg
    work=$(mktemp -d)
    cp scripts/tools/k8s.go.mod "$work/go.mod"
    cp scripts/tools/k8s.go.sum "$work/go.sum"
    minor=$(echo "$K8S_VERSION" | cut -d. -f2)
    ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    mkdir -p "$dir"
    log "building ${missing[*]} $K8S_VERSION (~10 min for the first, ~2 min each after)"
    for name in "${missing[@]}"; do
      log "building $name $K8S_VERSION"
      local start=$SECONDS
      (cd "$work" && go build -trimpath -ldflags="$ldflags" -o "$dir/$name" "k8s.io/kubernetes/cmd/$name")
      touch "$dir/.built-$name"
      log "$name built in $((SECONDS - start)) s"
    done
    rm -rf "$work"
  fi
  for name in "$@"; do link "$name" "$dir"; done
}

# kwok's stage definitions ship inside its module; gather the fast node and pod stages once.
build_kwok() {
  go_install kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
  local dir="$cache/kwok-$KWOK_VERSION" stages
  if [ ! -s "$dir/stages.yaml" ]; then
    stages="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
    if [ ! -d "$stages" ]; then
      (cd "$(mktemp -d)" && go mod download -x "sigs.k8s.io/kwok@$KWOK_VERSION" >/dev/null 2>&1) || true
    fi
    {
      for f in "$stages"/node/fast/*.yaml "$stages"/node/heartbeat/*.yaml "$stages"/pod/fast/*.yaml; do
        echo "---"
        cat "$f"
      done
    } >"$dir/stages.yaml.tmp"
    mv "$dir/stages.yaml.tmp" "$dir/stages.yaml"
  fi
  ln -sfn "$dir/stages.yaml" "$root/.tools/kwok-stages.yaml"
}

# The prometheus-operator module ships its CRDs as YAML; the chart's ServiceMonitors and
# PrometheusRules are checked against them. Nothing is built: the module is downloaded into
# the cache and its CRD folder linked as .tools/crds/prometheus-operator/.
fetch_prometheus_crds() {
  local dir="$cache/prometheus-crds-$PROMETHEUS_OPERATOR_VERSION" src
  if [ ! -f "$dir/.built-prometheus-crds" ]; then
    log "fetching prometheus-operator $PROMETHEUS_OPERATOR_VERSION CRDs (go mod download)"
    src=$(cd "$(mktemp -d)" && go mod download -json \
      "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    if [ -z "$src" ] || [ ! -d "$src/example/prometheus-operator-crd" ]; then
      echo "ensure-tools: prometheus-operator $PROMETHEUS_OPERATOR_VERSION has no CRD folder" >&2
      exit 1
    fi
    rm -rf "$dir" && mkdir -p "$dir"
    cp "$src"/example/prometheus-operator-crd/monitoring.coreos.com_*.yaml "$dir/"
    touch "$dir/.built-prometheus-crds"
  fi
  mkdir -p "$root/.tools/crds"
  ln -sfn "$dir" "$root/.tools/crds/prometheus-operator"
}

build() {
  case $1 in
    etcd) build_etcd ;;
    kube-apiserver | kubectl | kube-controller-manager | kube-scheduler) build_k8s "$1" ;;
    kwok) build_kwok ;;
    helm) go_install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
      "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" ;;
    minio) go_install minio "$MINIO_VERSION" github.com/minio/minio ;;
    kubeconform) go_install kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform ;;
    grpcurl) go_install grpcurl "$GRPCURL_VERSION" github.com/fullstorydev/grpcurl/cmd/grpcurl ;;
    ghz) go_install ghz "$GHZ_VERSION" github.com/bojand/ghz/cmd/ghz ;;
    promtool) go_install promtool "$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/promtool ;;
    prometheus-crds) fetch_prometheus_crds ;;
    *)
      echo "ensure-tools: unknown tool '$1' (known: k8s, etcd, kube-apiserver, kubectl," \
        "kube-controller-manager, kube-scheduler, kwok, helm, minio, kubeconform, grpcurl, ghz," \
        "promtool, prometheus-crds)" >&2
      exit 2
      ;;
  esac
}

k8s=(etcd kube-apiserver kubectl kube-controller-manager kube-scheduler kwok)
all=("${k8s[@]}" helm minio kubeconform grpcurl ghz promtool prometheus-crds)
[ $# -gt 0 ] || set -- "${all[@]}"
wanted=()
for arg in "$@"; do
  if [ "$arg" = k8s ]; then wanted+=("${k8s[@]}"); else wanted+=("$arg"); fi
done
for tool in "${wanted[@]}"; do build "$tool"; done
log "ready in .tools/bin: ${wanted[*]}"
