#!/usr/bin/env bash
# Regenerates the wrapper Go modules (k8s/, etcd/, kwok/, helm/) from versions.env.
# Only needed after a version bump; the generated go.mod/go.sum are committed.
# k8s.io/kubernetes requires its staging modules at v0.0.0 and maps them to
# ./staging with replace directives that do not apply to a dependency, so the
# wrapper maps each staging module to its published v0.X.Y tag instead. The list
# of staging modules is read from upstream's own go.mod, never hard-coded.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
SVER="0.${K8S_VERSION#1.}"

mkdir -p "$here/k8s" && cd "$here/k8s"
rm -f go.mod go.sum
go mod init certrotator.invalid/test-cluster/k8s
modfile=$(go list -m -f '{{.GoMod}}' "k8s.io/kubernetes@v$K8S_VERSION")
sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$modfile" |
  while read -r m; do go mod edit -replace="$m=$m@v$SVER"; done
gd=$(sed -n 's/^godebug default=\(.*\)/\1/p' "$modfile")
[ -n "$gd" ] && go mod edit -godebug=default="$gd"
goline=$(sed -n 's/^go \(.*\)/\1/p' "$modfile")
go mod edit -go="$goline"
go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" \
  "k8s.io/kubernetes/cmd/kube-controller-manager@v$K8S_VERSION" \
  "k8s.io/kubernetes/cmd/kube-scheduler@v$K8S_VERSION" \
  "k8s.io/kubernetes/cmd/kubectl@v$K8S_VERSION"

mkdir -p "$here/etcd" && cd "$here/etcd"
rm -f go.mod go.sum
go mod init certrotator.invalid/test-cluster/etcd
go get -tool "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"

mkdir -p "$here/kwok" && cd "$here/kwok"
rm -f go.mod go.sum
go mod init certrotator.invalid/test-cluster/kwok
go get -tool "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
mkdir -p "$here/helm" && cd "$here/helm"
rm -f go.mod go.sum
go mod init certrotator.invalid/test-cluster/helm
go get -tool "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
echo "wrappers regenerated for k8s $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION, helm $HELM_VERSION"
