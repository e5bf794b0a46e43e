#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) and helm (for the chart's tests) from the Go
# module proxy into a cache outside the repo keyed by the pinned versions. Prints the directory on stdout's last line.
#   - does nothing when the cache is complete (stamp present, checksums match);
#   - a half-built cache (no stamp, or a binary changed) is wiped and rebuilt;
#   - progress goes to stderr: one line per component and a heartbeat every 30 s.
# With --check it only reports: exit 0 when the cache is complete, 3 when it
# would build (nothing missing is built, nothing incomplete is removed).
set -euo pipefail
check_only=false
[ "${1:-}" = "--check" ] && check_only=true
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
cache=${CERTROTATOR_CACHE:-$HOME/.cache/certrotator}
export GOMODCACHE=${GOMODCACHE_OVERRIDE:-$cache/gomod} GOCACHE=${GOCACHE_OVERRIDE:-$cache/gocache}
gover=$(go env GOVERSION)
out="$cache/bin/k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}_${gover}"
stamp="$out/.complete"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm)

log() { printf '[build-binaries] %s\n' "$*" >&2; }

stamp_body() {
  echo "k8s=$K8S_VERSION etcd=$ETCD_VERSION kwok=$KWOK_VERSION helm=$HELM_VERSION go=$gover"
  (cd "$out" && sha256sum "${bins[@]}")
}

cache_complete() { [ -f "$stamp" ] && [ "$(stamp_body 2>/dev/null)" = "$(cat "$stamp")" ]; }

# The Lua 5.1 the Argo CD health check's tests run on: gopher-lua, the Lua Argo CD
# embeds (test/cluster/lua). Small and separate, so adding it does not rebuild the
# rest; $cache/bin/lua points at the current build (test/gitops/health.ts).
lua_version=$(awk '$1 == "require" && $2 == "github.com/yuin/gopher-lua" {print $3}' "$here/lua/go.mod")
lua_dir="$cache/bin/gopher-lua-${lua_version}_${gover}"
lua_ready() { [ -x "$lua_dir/lua" ] && [ "$(readlink "$cache/bin/lua" 2>/dev/null)" = "$(basename "$lua_dir")/lua" ]; }
build_lua() {
  lua_ready && return 0
  log "building gopher-lua $lua_version (the Lua 5.1 Argo CD embeds) into $lua_dir"
  rm -rf "$lua_dir.partial" && mkdir -p "$lua_dir.partial"
  (cd "$here/lua" && go build -trimpath -ldflags="-s -w" -o "$lua_dir.partial/lua" .) >&2
  rm -rf "$lua_dir" && mv "$lua_dir.partial" "$lua_dir"
  ln -sfn "$(basename "$lua_dir")/lua" "$cache/bin/lua"
}

if cache_complete && { $check_only || lua_ready; }; then
  log "cache complete: $out"
  echo "$out"; exit 0
fi
# One build at a time: two first runs (npm test in one terminal, npm run demo in
# another) would otherwise build into the same .partial directory and move it
# from under each other. The second waits, then finds the cache complete.
if ! $check_only; then
  mkdir -p "$cache"
  exec 9>"$cache/.build.lock"
  waited=false
  if ! flock -n 9; then
    log "another build holds $cache/.build.lock; waiting for it to finish"
    flock 9
    waited=true
  fi
  if cache_complete; then
    build_lua
    if $waited; then log "cache complete (built by the other run): $out"; else log "cache complete: $out"; fi
    echo "$out"; exit 0
  fi
  build_lua
fi
if [ -d "$out" ]; then
  log "cache at $out is incomplete or changed; rebuilding it"
  $check_only && exit 3
  rm -rf "$out"
fi
if $check_only; then
  log "no cache at $out; a build is needed"
  exit 3
fi
avail_kb=$(df -Pk "$cache" 2>/dev/null | awk 'NR==2{print $4}' || echo 0)
[ -z "$avail_kb" ] && avail_kb=0
if [ "$avail_kb" -gt 0 ] && [ "$avail_kb" -lt $((8 * 1024 * 1024)) ]; then
  log "warning: only $((avail_kb / 1024)) MiB free under $cache; a cold build needs about 8 GiB"
fi
mkdir -p "$out.partial"
trap 'rm -rf "$out.partial"' EXIT
start=$(date +%s)

# Runs a go build with -v into a log and prints a heartbeat with the number of
# packages compiled so far, so a 20-minute first build is visibly alive.
build() {
  local name=$1 dir=$2; shift 2
  local blog="$out.partial/build-$name.log" t0
  t0=$(date +%s)
  log "building $name (log: $blog)"
  (cd "$dir" && go build -v -p 2 -trimpath "$@") >"$blog" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && log "  $name: $(wc -l <"$blog") packages compiled, $(( $(date +%s) - t0 ))s"
  done
  if ! wait "$pid"; then
    log "build of $name failed; last lines of its log:"
    tail -n 30 "$blog" >&2
    exit 1
  fi
  log "built $name in $(( $(date +%s) - t0 ))s"
}

build etcd "$here/etcd" \
  -ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=v$ETCD_VERSION" \
  -o "$out.partial/etcd" go.etcd.io/etcd/server/v3

build kwok "$here/kwok" -ldflags="-s -w" -o "$out.partial/kwok" sigs.k8s.io/kwok/cmd/kwok

# As helm's Makefile stamps it: its version, and the Kubernetes version lint and
# template assume, taken from the client-go the wrapper module resolved.
hk=$(cd "$here/helm" && go list -m -f '{{.Version}}' k8s.io/client-go)
hk=${hk#v0.}; hk=${hk%%.*}
build helm "$here/helm" -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION \
-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$hk \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$hk" \
  -o "$out.partial/helm" helm.sh/helm/v3/cmd/helm

# Version stamping as upstream's hack/lib/version.sh does; gitVersion must be semver
# because component-base parses it at start-up.
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
vf=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  vf="$vf -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  vf="$vf -X $p.gitTreeState=clean -X $p.buildDate=2026-01-01T00:00:00Z"
done
build kubernetes "$here/k8s" -tags=selinux,notest,grpcnotrace -ldflags="-s -w $vf" -o "$out.partial/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl

"$out.partial/kube-apiserver" --version >&2
"$out.partial/etcd" --version | head -1 >&2
"$out.partial/helm" version --short >&2
mv "$out.partial" "$out"
trap - EXIT
stamp_body >"$stamp.tmp" && mv "$stamp.tmp" "$stamp"
log "all binaries built in $(( $(date +%s) - start ))s into $out"
echo "$out"
