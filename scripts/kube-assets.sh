#!/usr/bin/env bash
# Builds or installs the real Kubernetes components the tests of
# internal/kube run against, and caches them outside the repository:
#   kube-apiserver  built from k8s.io/kubernetes (the Go module proxy serves it)
#   etcd            Debian's etcd-server
#   helm            built from helm.sh/helm/v3 (renders deploy/helm/cairn)
# Prints the folder that holds all three; tests read it from
# CAIRN_KUBE_ASSETS. Recipe and pitfalls: ../shared/reference/real-components.md.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.32.13}
HELM_VERSION=${HELM_VERSION:-v3.17.3}
cache=${CAIRN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn}
assets="$cache/kube-$KUBE_VERSION"
mkdir -p "$assets"

say() { printf '%s\n' "$*" >&2; }

# etcd: Debian's package is enough for an API server (3.4.x).
if [ ! -x "$assets/etcd" ]; then
  if ! command -v etcd >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      say "kube-assets: etcd missing and not root: apt-get install etcd-server, or run as root"
      exit 1
    fi
    say "kube-assets: installing etcd-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
    # The package starts a system etcd on 2379; the tests run their own.
    systemctl disable --now etcd >/dev/null 2>&1 || service etcd stop >/dev/null 2>&1 || pkill -x etcd || true
  fi
  ln -sf "$(command -v etcd)" "$assets/etcd"
fi

# A throwaway module that requires k8s.io/kubernetes with one replace per
# staging module: the only way `go build` accepts its replace directives.
build_apiserver() {
  local minor=${KUBE_VERSION#v1.}
  local work
  work=$(mktemp -d)
  say "kube-assets: building kube-apiserver $KUBE_VERSION (about 5 minutes, once)"
  {
    echo 'module cairn-kube-assets'
    echo 'go 1.23'
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go \
      cloud-provider cluster-bootstrap code-generator component-base component-helpers \
      controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation \
      endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy \
      kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission \
      sample-apiserver sample-cli-plugin sample-controller; do
      echo "replace k8s.io/$m => k8s.io/$m v0.$minor"
    done
  } >"$work/go.mod"
  (
    cd "$work"
    # Staging modules this release lacks answer 404 and are left out.
    for m in $(sed -n 's/^replace k8s.io\/\([^ ]*\) .*/\1/p' go.mod); do
      if ! go mod download "k8s.io/$m@v0.$minor" >/dev/null 2>&1; then
        sed -i "/^replace k8s.io\/$m /d" go.mod
      fi
    done
    go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION" >/dev/null 2>&1
    CGO_ENABLED=0 go build -trimpath -o "$assets/kube-apiserver.tmp" \
      -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION" \
      k8s.io/kubernetes/cmd/kube-apiserver
  )
  mv "$assets/kube-apiserver.tmp" "$assets/kube-apiserver"
  rm -rf "$work"
}

build_helm() {
  local work
  work=$(mktemp -d)
  say "kube-assets: building helm $HELM_VERSION (once)"
  (
    cd "$work"
    printf 'module cairn-helm\ngo 1.23\n' >go.mod
    go get "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >/dev/null 2>&1
    CGO_ENABLED=0 go build -trimpath -o "$assets/helm.tmp" \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
      helm.sh/helm/v3/cmd/helm
  )
  mv "$assets/helm.tmp" "$assets/helm"
  rm -rf "$work"
}

[ -x "$assets/kube-apiserver" ] || build_apiserver
[ -x "$assets/helm" ] || build_helm

echo "$assets"
