# The DNS benchmark (issue 4), sourced by run.sh --dns after it built
# cairn and cairnbench: it uses run.sh's $work, $out, $bench, $mode,
# $cmdline, $busy_before, $etcd_bin, log, stop, start_cairn and start_etcd.
#
# One Cairn server (DNS on a free port, data dir under the temp dir: the
# write-ahead log fsyncs every acknowledged write), one CoreDNS serving the
# same records from a zone file (plugin file only: no cache), and for the
# registration -> visible runs one etcd with a second CoreDNS reading it
# (plugin etcd) run side by side on 127.0.0.1; `cairnbench dns` registers
# the records, checks both servers answer alike, and drives dnsperf and
# its own pollers.

# CoreDNS, built once with `go install` from the module proxy and cached
# outside the repository. v1.15.0's go.mod asks for go 1.26.0 (no
# toolchain line, no replace), so the local Go builds it.
coredns_version=v1.15.0
coredns_dir="${XDG_CACHE_HOME:-$HOME/.cache}/cairn-bench/coredns-$coredns_version"
coredns_bin="$coredns_dir/coredns"
if [ ! -x "$coredns_bin" ]; then
  log "dns: building CoreDNS $coredns_version into $coredns_dir (once; about 2 minutes on 2 cores)"
  mkdir -p "$coredns_dir"
  GOBIN="$coredns_dir" go install "github.com/coredns/coredns@$coredns_version"
fi

server_help=$("$work/cairn" server --help 2>&1 || true)
if ! grep -q -- '-dns-addr' <<<"$server_help"; then
  echo "run.sh --dns: this cairn has no DNS server (no --dns-addr flag)" >&2
  exit 1
fi

if [ "$mode" = quick ]; then
  dns_services=200 dns_for=1s dns_queries=10000 vis_n=30 dig_n=5
else
  dns_services=1000 dns_for=10s dns_queries=100000 vis_n=200 dig_n=50
fi
dns_instances=3 dns_big=100 dns_ttl=5 dns_clients=4 dns_paced=50
dns_scenarios=a,big-udp,big-edns,big-tcp,nx

# start_coredns NAME CONFIG-BODY: a CoreDNS answering cairn. on a free
# port with the given server block body; sets coredns_pid and coredns_addr.
start_coredns() {
  local name=$1 body=$2 port
  port=$("$bench" freeport -udp)
  mkdir -p "$work/$name"
  cat >"$work/$name/Corefile" <<EOF
cairn.:$port {
$body
}
EOF
  "$coredns_bin" -conf "$work/$name/Corefile" >"$work/$name.log" 2>&1 &
  coredns_pid=$!
  pids+=("$coredns_pid")
  coredns_addr="127.0.0.1:$port"
  "$bench" wait -dns "$coredns_addr" -timeout 30s
}

log "dns: writing the zone file ($dns_services services x $dns_instances instances, one of $dns_big)"
mkdir -p "$work/coredns"
"$bench" dns-zone -services "$dns_services" -instances "$dns_instances" -big "$dns_big" -ttl "$dns_ttl" -out "$work/coredns/db.cairn"

log "dns: starting Cairn, CoreDNS (zone file), etcd and CoreDNS (etcd plugin)"
dns_port=$("$bench" freeport -udp)
start_cairn dns --dns-addr "127.0.0.1:$dns_port" --dns-ttl "${dns_ttl}s"
cairn_dns="127.0.0.1:$dns_port"
"$bench" wait -dns "$cairn_dns" -timeout 30s
# reload 0: the file plugin would otherwise re-read the zone's SOA every minute.
start_coredns coredns "  file $work/coredns/db.cairn cairn. {
    reload 0
  }"
coredns_file_pid=$coredns_pid coredns_file_addr=$coredns_addr
start_etcd dns
start_coredns coredns-etcd "  etcd cairn. {
    path /skydns
    endpoint $etcd_url
  }"
coredns_etcd_pid=$coredns_pid coredns_etcd_addr=$coredns_addr
dnsperf_version=$(dnsperf -h 2>&1 | sed -n 's/^Version //p' | head -1)
log "dns: Cairn DNS $cairn_dns (pid $cairn_pid), CoreDNS $coredns_version $coredns_file_addr (pid $coredns_file_pid), etcd $etcd_url (pid $etcd_pid), CoreDNS+etcd $coredns_etcd_addr (pid $coredns_etcd_pid); dnsperf $dnsperf_version"

"$bench" dns -url "$cairn_url" -pid "$cairn_pid" -dns "$cairn_dns" \
  -coredns "$coredns_file_addr" -coredns-pid "$coredns_file_pid" -coredns-version "CoreDNS ${coredns_version#v}" \
  -etcd "$etcd_url" -etcd-pid "$etcd_pid" -coredns-etcd "$coredns_etcd_addr" -coredns-etcd-pid "$coredns_etcd_pid" \
  -dnsperf dnsperf -dnsperf-version "$dnsperf_version" \
  -services "$dns_services" -instances "$dns_instances" -big "$dns_big" -ttl "$dns_ttl" \
  -c "$dns_clients" -for "$dns_for" -paced "$dns_paced" -queries "$dns_queries" -scenarios "$dns_scenarios" \
  -vis-n "$vis_n" -dig-n "$dig_n" -workdir "$work" -out "$out/dns.json" -raw "$out/dns"
stop "$cairn_pid"
stop "$coredns_file_pid"
stop "$coredns_etcd_pid"
stop "$etcd_pid"

{
  echo "Cairn DNS benchmark ($mode run)"
  echo
  echo "- command: $cmdline"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM"
  echo "- $(go version)"
  echo "- CoreDNS $coredns_version (go install from the module proxy, cached in $coredns_dir; $("$coredns_bin" -version | sed -n 2p | sed 's/, *$//')): plugin file only (zone cairn., reload 0; no cache, no log); second instance: plugin etcd only (path /skydns)"
  echo "- dnsperf $dnsperf_version (Debian package), dig $(dig -v 2>&1 | sed 's/^DiG //'); $("$etcd_bin" --version | head -1) (Debian package)"
  if [ -n "${CAIRN_BIN:-}" ]; then
    echo "- cairn: prebuilt binary $CAIRN_BIN"
  else
    echo "- cairn: built from $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$root" && [ -z "$(git status --porcelain -- . ':!bench' 2>/dev/null)" ] || echo ' + uncommitted changes')"
  fi
  echo "- cairn server --data-dir (write-ahead log, fsync per acknowledged write) --dns-addr 127.0.0.1:PORT --dns-ttl ${dns_ttl}s, other flags default; GOMAXPROCS default for Cairn and both CoreDNS"
  echo "- machine busy before the run (3s sample): $busy_before cores; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- $dns_services services x $dns_instances instances + one of $dns_big; dnsperf -c $dns_clients -l ${dns_for%s} (-q default 100) per run, query sets $dns_scenarios, paced at ${dns_paced}% of the slower max; $vis_n registrations per miekg propagation run, $dig_n per dig run"
  echo
  "$bench" dns-report "$out/dns.json"
  echo "Server log lines at WARN or ERROR (logs in ${out#"$root"/}):"
  echo
  for f in "$work"/cairn-dns.log "$work"/etcd-dns.log; do
    grep -E '"level":"(WARN|ERROR|warn|error)"' "$f" | grep -o -E '"msg":"[^"]*"' | sort | uniq -c |
      sed "s|^ *\([0-9]*\) \"msg\":|- $(basename "$f" .log): \1x |" || true
  done
  for f in "$work"/coredns.log "$work"/coredns-etcd.log; do
    if grep -q -E '\[(ERROR|WARNING)\]' "$f"; then
      echo "- $(basename "$f" .log): $(grep -c -E '\[(ERROR|WARNING)\]' "$f") lines at ERROR or WARNING"
    fi
  done
  echo
} | tee "$out/summary.md"
