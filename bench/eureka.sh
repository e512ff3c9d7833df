# The Eureka API benchmark (issue 3), sourced by run.sh --eureka after it
# built cairn and cairnbench: it uses run.sh's $work, $out, $bench, $mode,
# $cmdline, $busy_before, log, stop, start_cairn and start_etcd.
#
# One Cairn server (a data dir under the temp dir: the write-ahead log
# fsyncs every acknowledged write), one single-member etcd and one nginx
# (serving the Cairn /apps documents as static files) run side by side on
# 127.0.0.1; `cairnbench eureka` measures all three in turn.

# delta_window is the server's --eureka-delta-window: Cairn's propagation
# runs wait until the setup's registrations have left it (the default, 3m,
# in the full run; the quick run shortens it so as not to wait).
if [ "$mode" = quick ]; then
  eu_n=2000 eu_apps=20 eu_c=32 get_for=1s churn_rates=10,100 delta_n=50 renew_for=2s delta_window=5s
else
  eu_n=10000 eu_apps=100 eu_c=64 get_for=5s churn_rates=10,100 delta_n=400 renew_for=10s delta_window=3m
fi
get_conns=4,16 churn_conns=16 delta_every=20ms delta_intervals=0,100ms

# start_nginx: a foreground nginx (master and one worker per core) on a free
# port serving $work/nginx/root; sets nginx_pid, nginx_url and nginx_root.
# Everything it writes stays under $work, so it needs no privileges; when
# run as root its workers run as nobody, hence the read permissions.
start_nginx() {
  local port dir="$work/nginx"
  port=$("$bench" freeport)
  mkdir -p "$dir/root" "$dir/tmp"
  chmod 711 "$work"
  chmod 755 "$dir" "$dir/root"
  cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $(nproc);
pid $dir/nginx.pid;
error_log $work/nginx.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000000;
  keepalive_timeout 120s;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  server {
    # reuseport: one listening socket per worker, so the connections are
    # spread over both workers.
    listen 127.0.0.1:$port reuseport;
    root $dir/root;
    location = /health { return 200; }
    # Tried on this machine (4 and 16 connections): for a 12 MB file,
    # sendfile over loopback gave 3.6 GB/s, read + write through 256k
    # buffers 4.6 GB/s; for 0.1-0.5 MB files sendfile was as fast or
    # faster, but with tcp_nopush (TCP_CORK) 4 connections got a third
    # less. So each document gets what was fastest for its size.
    location ~ \.json$ { default_type application/json; sendfile off; output_buffers 2 256k; }
    location ~ \.xml$ { default_type application/xml; sendfile off; output_buffers 2 256k; }
    # The pre-compressed documents, answered as Cairn answers them.
    location ~ \.json\.gz$ { default_type application/json; sendfile on; add_header Content-Encoding gzip; add_header Vary "Accept, Accept-Encoding"; }
    location ~ \.xml\.gz$ { default_type application/xml; sendfile on; add_header Content-Encoding gzip; add_header Vary "Accept, Accept-Encoding"; }
  }
}
EOF
  "$nginx_bin" -e "$work/nginx.log" -p "$dir" -c "$dir/nginx.conf" >"$work/nginx.out.log" 2>&1 &
  nginx_pid=$!
  pids+=("$nginx_pid")
  nginx_url="http://127.0.0.1:$port"
  nginx_root="$dir/root"
  "$bench" wait -url "$nginx_url/health" -timeout 30s
}

log "eureka: starting Cairn, etcd and nginx"
start_cairn eureka --eureka-delta-window "$delta_window"
start_etcd eureka
start_nginx
nginx_version=$("$nginx_bin" -v 2>&1 | sed 's|^nginx version: ||')
log "eureka: Cairn $cairn_url (pid $cairn_pid), etcd $etcd_url (pid $etcd_pid), nginx $nginx_url (pid $nginx_pid, $nginx_version)"
"$bench" eureka -url "$cairn_url" -pid "$cairn_pid" -etcd "$etcd_url" -etcd-pid "$etcd_pid" \
  -nginx-url "$nginx_url" -nginx-pid "$nginx_pid" -nginx-root "$nginx_root" -nginx-version "$nginx_version" \
  -n "$eu_n" -apps "$eu_apps" -c "$eu_c" -get-for "$get_for" -get-conns "$get_conns" \
  -churn-rates "$churn_rates" -churn-conns "$churn_conns" \
  -delta-n "$delta_n" -delta-every "$delta_every" -delta-intervals "$delta_intervals" -delta-window "$delta_window" -renew-for "$renew_for" \
  -out "$out/eureka.json" -raw "$out/eureka"
stop "$cairn_pid"
stop "$etcd_pid"
stop "$nginx_pid"

{
  echo "Cairn Eureka API benchmark ($mode run)"
  echo
  echo "- command: $cmdline"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM"
  echo "- $(go version)"
  echo "- $("$etcd_bin" --version | head -1) (Debian package), client go.etcd.io/etcd/client/v3 $(cd "$here" && go list -m -f '{{.Version}}' go.etcd.io/etcd/client/v3)"
  echo "- nginx $nginx_version (Debian package), $(nproc) workers, static files (config in eureka.sh)"
  if [ -n "${CAIRN_BIN:-}" ]; then
    echo "- cairn: prebuilt binary $CAIRN_BIN"
  else
    echo "- cairn: built from $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$root" && [ -z "$(git status --porcelain -- . ':!bench' 2>/dev/null)" ] || echo ' + uncommitted changes')"
  fi
  echo "- cairn server --data-dir (write-ahead log, fsync per acknowledged write) --eureka-delta-window $delta_window, other flags default"
  echo "- machine busy before the run (3s sample): $busy_before cores; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- $eu_n instances over $eu_apps apps, Spring-shaped bodies; GET runs of $get_for on $get_conns connections (churn: $churn_conns); churn at $churn_rates changes/s; $delta_n registrations per propagation run, about one every $delta_every, polls $delta_intervals (0: back to back); renewals for $renew_for by $eu_c clients"
  echo
  "$bench" eureka-report "$out/eureka.json"
  echo "Server log lines at WARN or ERROR (logs in ${out#"$root"/}):"
  echo
  for f in "$work"/cairn-eureka.log "$work"/etcd-eureka.log; do
    grep -E '"level":"(WARN|ERROR|warn|error)"' "$f" | grep -o -E '"msg":"[^"]*"' | sort | uniq -c |
      sed "s|^ *\([0-9]*\) \"msg\":|- $(basename "$f" .log): \1x |" || true
  done
  if [ -s "$work/nginx.log" ]; then
    echo "- nginx: $(wc -l <"$work/nginx.log") lines in nginx.log"
  fi
  echo
} | tee "$out/summary.md"
