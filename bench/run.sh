#!/usr/bin/env bash
# Benchmarks of Cairn's registry core next to etcd (see README.md).
#
#   bench/run.sh                   full run: 10k and 100k instances (a few minutes)
#   bench/run.sh --quick           smoke run: 2k instances, small counts (seconds)
#   bench/run.sh --eureka          the Eureka API: 10k instances, next to nginx and etcd (about 4 minutes)
#   bench/run.sh --eureka --quick  its smoke run: 2k instances (under a minute)
#   bench/run.sh --dns             DNS: dnsperf against Cairn and CoreDNS (about 4.5 minutes)
#   bench/run.sh --dns --quick     its smoke run (about 30 seconds, once CoreDNS is cached)
#   bench/run.sh --gateway         the gateway: wrk directly, through Cairn, nginx and HAProxy (about 6 minutes)
#   bench/run.sh --gateway --quick its smoke run (about 1.5 minutes)
#   bench/run.sh --kube            Kubernetes sync: EndpointSlice change -> gateway, and memory
#                                  with 1,000 Services / 10,000 endpoints, next to a bare informer
#   bench/run.sh --kube --quick    its smoke run (20 changes, 100 Services)
#
# Installs etcd-server if /usr/bin/etcd is missing (nginx for --eureka,
# dnsperf and dnsutils for --dns, which also builds CoreDNS once into
# ${XDG_CACHE_HOME:-~/.cache}/cairn-bench; wrk, nginx and haproxy, and no
# etcd, for --gateway),
# builds cairn and the load generator, then for each size starts a fresh
# Cairn server and a fresh single-member etcd side by side on 127.0.0.1
# (data dirs under a temp dir), measures both, stops both, and prints the
# summary tables (--eureka: one Cairn, etcd and nginx; see eureka.sh;
# --dns: one Cairn, CoreDNS, etcd and CoreDNS on etcd; see dns.sh;
# --gateway: two backends, cairn proxy, nginx, HAProxy; see gateway.sh). Raw
# JSON results, the summary, the progress log and the server logs are kept
# in bench/out/<timestamp>/.
# CAIRN_BIN=/path/to/cairn uses that binary instead of building one.
# Not part of CI.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

cmdline="bench/run.sh${*:+ $*}"
mode=full
suite=core
for arg in "$@"; do
  case "$arg" in
    --quick) mode=quick ;;
    --eureka) suite=eureka ;;
    --dns) suite=dns ;;
    --gateway) suite=gateway ;;
    --kube) suite=kube ;;
    -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--eureka | --dns | --gateway | --kube] [--quick]" >&2; exit 2 ;;
  esac
done

if [ "$mode" = quick ]; then
  sizes=(2000); concurrency=32; renew_for=2s; prop_n=100; bg_rate=1000; settle=1s; churn=5000
else
  sizes=(10000 100000); concurrency=64; renew_for=10s; prop_n=2000; bg_rate=5000; settle=5s; churn=65536
fi

log() { printf '\n== %s\n' "$*" >&2; }

# --- Kubernetes: its own program (bench/kube) against a real API server -----
if [ "$suite" = kube ]; then
  out="$here/out/$(date -u +%Y%m%dT%H%M%SZ)"
  mkdir -p "$out"
  log "Kubernetes components (scripts/kube-assets.sh)"
  CAIRN_KUBE_ASSETS=$(bash "$root/scripts/kube-assets.sh")
  export CAIRN_KUBE_ASSETS
  args=()
  [ "$mode" = quick ] && args=(-changes 20 -services 100)
  log "bench/kube ${args[*]}"
  (cd "$here/kube" && go run . "${args[@]}" -json "$out/kube.json") | tee "$out/summary.txt"
  echo "command: $cmdline; results in $out" >&2
  exit 0
fi

# --- etcd (and nginx, ...) ---------------------------------------------------
etcd_bin=/usr/bin/etcd
nginx_bin=/usr/sbin/nginx
haproxy_bin=/usr/sbin/haproxy
wrk_bin=/usr/bin/wrk
missing=()
[ "$suite" = gateway ] || [ -x "$etcd_bin" ] || missing+=(etcd-server)
[ "$suite" != eureka ] || [ -x "$nginx_bin" ] || missing+=(nginx)
[ "$suite" != gateway ] || [ -x "$nginx_bin" ] || missing+=(nginx)
[ "$suite" != gateway ] || [ -x "$haproxy_bin" ] || missing+=(haproxy)
[ "$suite" != gateway ] || [ -x "$wrk_bin" ] || missing+=(wrk)
[ "$suite" != dns ] || [ -x /usr/bin/dnsperf ] || missing+=(dnsperf)
[ "$suite" != dns ] || [ -x /usr/bin/dig ] || missing+=(dnsutils)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "run.sh: ${missing[*]} missing and we are not root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's nginx and haproxy packages would start a system nginx on port
  # 80 (and a haproxy) where services may start; this script runs its own
  # on free ports only.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- build ------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench.XXXXXX")
out="$here/out/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
exec 2> >(tee "$out/progress.log" >&2) # keep the progress lines with the results
pids=()

cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  cp "$work"/*.log "$out"/ 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ "$suite" = gateway ] && [[ " ${GATEWAY_TARGETS:-cairn} " != *" cairn "* ]]; then
  log "building cairnbench (GATEWAY_TARGETS leaves Cairn out)"
elif [ -n "${CAIRN_BIN:-}" ]; then
  log "using cairn binary $CAIRN_BIN; building cairnbench"
  cp "$CAIRN_BIN" "$work/cairn"
else
  log "building cairn and cairnbench"
  (cd "$root" && go build -o "$work/cairn" ./cmd/cairn)
fi
(cd "$here" && go build -o "$work/cairnbench" ./cmd/cairnbench)
bench="$work/cairnbench"

# stop PID: terminate one process this script started and wait for it.
stop() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# start_cairn SIZE [FLAG...]: sets cairn_pid and cairn_url.
start_cairn() {
  local port
  port=$("$bench" freeport)
  # DNS on a free port unless the caller names one (a later flag wins), so
  # that a cairn dev holding 127.0.0.1:8600 cannot fail the run.
  "$work/cairn" server --http-addr "127.0.0.1:$port" --data-dir "$work/cairn-data-$1" --dns-addr 127.0.0.1:0 "${@:2}" \
    >"$work/cairn-$1.out.log" 2>"$work/cairn-$1.log" &
  cairn_pid=$!
  pids+=("$cairn_pid")
  cairn_url="http://127.0.0.1:$port"
  "$bench" wait -url "$cairn_url/health" -timeout 30s
}

# start_etcd SIZE: sets etcd_pid and etcd_url.
start_etcd() {
  local cport pport
  cport=$("$bench" freeport)
  pport=$("$bench" freeport)
  "$etcd_bin" --name bench --data-dir "$work/etcd-data-$1" \
    --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "bench=http://127.0.0.1:$pport" --initial-cluster-state new \
    --logger zap --log-outputs stderr --log-level warn \
    >"$work/etcd-$1.log" 2>&1 &
  etcd_pid=$!
  pids+=("$etcd_pid")
  etcd_url="http://127.0.0.1:$cport"
  "$bench" wait -url "$etcd_url/health" -timeout 30s
}

busy_before=$("$bench" busy -for 3s)
log "machine busy before the run: $busy_before cores (anything above ~0.1 is someone else's load and skews the figures)"

if [ "$suite" = eureka ]; then
  # shellcheck source=eureka.sh
  . "$here/eureka.sh"
  exit 0
fi
if [ "$suite" = dns ]; then
  # shellcheck source=dns.sh
  . "$here/dns.sh"
  exit 0
fi
if [ "$suite" = gateway ]; then
  # shellcheck source=gateway.sh
  . "$here/gateway.sh"
  exit 0
fi

common=(-c "$concurrency" -prop-n "$prop_n" -bg-rate "$bg_rate" -settle "$settle")
for n in "${sizes[@]}"; do
  log "size $n: starting Cairn and etcd"
  start_cairn "$n"
  start_etcd "$n"
  log "size $n: Cairn ($cairn_url, pid $cairn_pid)"
  "$bench" cairn -url "$cairn_url" -pid "$cairn_pid" -n "$n" -renew-for "$renew_for" -churn "$churn" "${common[@]}" \
    -out "$out/cairn-$n.json" -raw "$out/cairn-$n"
  log "size $n: etcd ($etcd_url, pid $etcd_pid)"
  "$bench" etcd -endpoint "$etcd_url" -pid "$etcd_pid" -n "$n" "${common[@]}" -out "$out/etcd-$n.json" -raw "$out/etcd-$n"
  stop "$cairn_pid"
  stop "$etcd_pid"
done

# --- summary ----------------------------------------------------------------
{
  echo "Cairn registry core benchmark ($mode run)"
  echo
  echo "- command: $cmdline"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM"
  echo "- $(go version)"
  echo "- $("$etcd_bin" --version | head -1) (Debian package), client go.etcd.io/etcd/client/v3 $(cd "$here" && go list -m -f '{{.Version}}' go.etcd.io/etcd/client/v3)"
  if [ -n "${CAIRN_BIN:-}" ]; then
    echo "- cairn: prebuilt binary $CAIRN_BIN"
  else
    echo "- cairn: built from $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$root" && [ -z "$(git status --porcelain -- . ':!bench' 2>/dev/null)" ] || echo ' + uncommitted changes')"
  fi
  echo "- machine busy before the run (3s sample): $busy_before cores; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- sizes ${sizes[*]}; $concurrency clients; renewals for $renew_for; $prop_n writes per propagation run; background $bg_rate/s; memory read $settle after the load; $churn churn re-registrations"
  echo
  "$bench" report "$out"/*.json
  echo "Server log lines at WARN or ERROR (logs in ${out#"$root"/}):"
  echo
  for f in "$work"/cairn-*[0-9].log "$work"/etcd-*.log; do
    grep -E '"level":"(WARN|ERROR|warn|error)"' "$f" | grep -o -E '"msg":"[^"]*"' | sort | uniq -c |
      sed "s|^ *\([0-9]*\) \"msg\":|- $(basename "$f" .log): \1x |" || true
  done
  echo
} | tee "$out/summary.md"
