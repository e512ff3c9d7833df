#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine: installs the
# real peers the tests use, checks formatting and vet, then runs every test
# with the race detector (the e2e tests build and run the real binary).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# Real components from Debian's packages (see ../shared/reference/real-components.md).
need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v dig >/dev/null 2>&1 || need_apt+=(dnsutils) # real dig for internal/dns
command -v curl >/dev/null 2>&1 || need_apt+=(curl)    # real curl (HTTP/1.1, h2c, h2 over TLS) for internal/proxy
# node and npm run the real eureka-js-client (internal/eureka/jsclient_test.go),
# pinned in internal/eureka/testdata/jsclient/package-lock.json.
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: ${need_apt[*]} missing and not root: install them or run as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# etcd, kube-apiserver and helm for internal/kube's tests: built once and
# cached outside the repository (about 6 minutes the first time).
log "Kubernetes components (scripts/kube-assets.sh)"
CAIRN_KUBE_ASSETS=$(bash scripts/kube-assets.sh)
export CAIRN_KUBE_ASSETS
echo "in $CAIRN_KUBE_ASSETS"

log "npm ci (internal/eureka/testdata/jsclient)"
(cd internal/eureka/testdata/jsclient && npm ci --no-audit --no-fund --loglevel=error)

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bench/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

log "go vet"
go vet ./...

log "go test -race"
go test -race -count=1 -timeout 20m ./...
# The gateway serves plain HTTP/1.1 from event loops by default; its tests
# run once more on the goroutine-per-connection server, which the loops
# hand work to and which --goroutine-per-conn selects.
log "go test -race ./internal/proxy (goroutine per connection)"
CAIRN_TEST_GOROUTINES=1 go test -race -count=1 -timeout 10m ./internal/proxy

log "fuzz (short runs of each fuzz target)"
# The budget is a count of executions, not a duration: with a duration, Go
# 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" when its deadline races a worker (golang/go#75804, fixed in 1.27).
for target in $(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' . | sed 's/^func //' | sort -u); do
  pkg=$(dirname "$(grep -rlE "^func ${target}\(" --include='*_test.go' . | head -1)")
  budget=${FUZZTIME:-60000x}
  # FuzzReplay writes and replays a log on disk per input (~500/s): a tenth
  # of the count keeps it near the others' 2-7 s.
  [ -n "${FUZZTIME:-}" ] || [ "$target" != FuzzReplay ] || budget=6000x
  go test -run='^$' -fuzz="^${target}\$" -fuzztime="$budget" "$pkg"
done

log "all tests passed"
