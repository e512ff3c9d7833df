# The gateway benchmark (issue 5), sourced by run.sh --gateway after it
# built cairn and cairnbench: it uses run.sh's $here, $root, $work, $out,
# $bench, $mode, $cmdline, $busy_before, $nginx_bin, $haproxy_bin,
# $wrk_bin, log and stop.
#
# Two instances of one small Go backend (cmd/gwbackend) on 127.0.0.1, and
# in front of both, each on its own port: `cairn proxy`, nginx, HAProxy
# (Debian's packages) and Go's own httputil.ReverseProxy (gwbackend
# -upstreams, a reference), all round robin with keep-alive to the
# backends and no access log. `cairnbench gateway` then runs wrk against
# the first backend directly and through each proxy, takes CPU profiles,
# and measures latency at a fixed rate with its own paced client.
#
# GATEWAY_TARGETS="direct nginx haproxy" limits the run to those targets
# (default: direct cairn nginx haproxy go-httputil go-epoll; direct is
# required).

if [ "$mode" = quick ]; then
  gw_for=3s gw_warmup=1s gw_rounds=2 gw_profile_for=3s gw_paced_for=3s gw_paced_rounds=1
else
  gw_for=15s gw_warmup=2s gw_rounds=2 gw_profile_for=10s gw_paced_for=10s gw_paced_rounds=2
fi
gw_threads=2 gw_conns=64 gw_rate=2000 gw_paced_conns=32
read -r -a gw_targets <<<"${GATEWAY_TARGETS:-direct cairn nginx haproxy go-httputil go-epoll}"
gw_has() {
  local t
  for t in "${gw_targets[@]}"; do [ "$t" = "$1" ] && return 0; done
  return 1
}
gw_has direct || {
  echo "run.sh --gateway: GATEWAY_TARGETS must include direct" >&2
  exit 2
}

if gw_has cairn; then
  proxy_help=$("$work/cairn" proxy --help 2>&1 || true)
  if ! grep -q -- '-listen' <<<"$proxy_help" || ! grep -q -- '-admin-addr' <<<"$proxy_help"; then
    echo "run.sh --gateway: this cairn has no 'proxy' command with --listen and --admin-addr" >&2
    echo "(GATEWAY_TARGETS=\"direct nginx haproxy go-httputil\" runs the others)" >&2
    exit 1
  fi
fi

log "gateway: building the backend (cmd/gwbackend)"
(cd "$here" && go build -o "$work/gwbackend" ./cmd/gwbackend && go build -o "$work/evproxy" ./cmd/evproxy)

# gw_wait URL: until URL answers 200 (through a proxy: the backend's answer).
gw_wait() { "$bench" wait -url "$1" -timeout 30s; }

# --- backends ---------------------------------------------------------------
be1_port=$("$bench" freeport)
be2_port=$("$bench" freeport)
"$work/gwbackend" -listen "127.0.0.1:$be1_port" -name b1 >"$work/backend-1.log" 2>&1 &
be1_pid=$!
pids+=("$be1_pid")
"$work/gwbackend" -listen "127.0.0.1:$be2_port" -name b2 >"$work/backend-2.log" 2>&1 &
be2_pid=$!
pids+=("$be2_pid")
gw_wait "http://127.0.0.1:$be1_port/"
gw_wait "http://127.0.0.1:$be2_port/"
backends="127.0.0.1:$be1_port 127.0.0.1:$be2_port"

gw_args=(-target "direct=http://127.0.0.1:$be1_port" -version "direct=the backend itself (bench/cmd/gwbackend, $(go env GOVERSION) net/http)")

# --- Cairn ------------------------------------------------------------------
cairn_proxy_flags=""
if gw_has cairn; then
  cat >"$work/cairn-route.yaml" <<EOF
apiVersion: cairn.dev/v1
kind: Route
metadata: {name: bench}
spec:
  backends:
    - {address: "127.0.0.1:$be1_port"}
    - {address: "127.0.0.1:$be2_port"}
  loadBalancer: {policy: round_robin}
EOF
  cp_port=$("$bench" freeport)
  ca_port=$("$bench" freeport)
  cairn_extra=()
  # No access log, as for nginx and HAProxy, where the flag exists.
  if grep -q -- '-access-log' <<<"$proxy_help"; then
    cairn_extra+=(--access-log off)
  fi
  cairn_proxy_flags="--config cairn-route.yaml --listen 127.0.0.1:PORT --admin-addr 127.0.0.1:PORT${cairn_extra[*]:+ ${cairn_extra[*]}}"
  "$work/cairn" proxy --config "$work/cairn-route.yaml" --listen "127.0.0.1:$cp_port" --admin-addr "127.0.0.1:$ca_port" "${cairn_extra[@]}" \
    >"$work/cairn-proxy.out.log" 2>"$work/cairn-proxy.log" &
  cairn_pid=$!
  pids+=("$cairn_pid")
  gw_wait "http://127.0.0.1:$cp_port/"
  cairn_version=$({ "$work/cairn" version 2>/dev/null || echo cairn; } | head -1)
  gw_args+=(-target "cairn=http://127.0.0.1:$cp_port" -pid "cairn=$cairn_pid" -version "cairn=$cairn_version"
    -profile "cairn=http://127.0.0.1:$ca_port/debug/pprof/profile" -own "cairn=github.com/cairnhq/cairn/")
fi

# --- nginx ------------------------------------------------------------------
# One worker per core (auto), keep-alive to the backends (a pool of 64
# idle connections per worker, HTTP/1.1, the Connection header cleared),
# no limit on requests per connection on either side, no access log.
# The same request headers as Cairn adds (issue 5 asks for them, and the
# backend parses them too): X-Forwarded-For/Proto/Host, and X-Request-Id
# kept from the client or generated (32 hex digits, as Cairn's), echoed
# to the client.
if gw_has nginx; then
  ng_dir="$work/nginx-gw"
  ng_port=$("$bench" freeport)
  mkdir -p "$ng_dir/tmp"
  chmod 711 "$work"
  chmod 755 "$ng_dir"
  cat >"$ng_dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes auto;
pid $ng_dir/nginx.pid;
error_log $work/nginx-gw.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  map \$http_x_request_id \$cairn_rid { default \$http_x_request_id; "" \$request_id; }
  keepalive_requests 1000000000;
  keepalive_timeout 120s;
  client_body_temp_path $ng_dir/tmp/body;
  proxy_temp_path $ng_dir/tmp/proxy;
  fastcgi_temp_path $ng_dir/tmp/fastcgi;
  uwsgi_temp_path $ng_dir/tmp/uwsgi;
  scgi_temp_path $ng_dir/tmp/scgi;
  upstream backends {
    server 127.0.0.1:$be1_port;
    server 127.0.0.1:$be2_port;
    keepalive 64;
    keepalive_requests 1000000000;
    keepalive_timeout 120s;
  }
  server {
    # reuseport: one listening socket per worker, connections spread over both.
    listen 127.0.0.1:$ng_port reuseport;
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header X-Request-Id \$cairn_rid;
      add_header X-Request-Id \$cairn_rid always;
    }
  }
}
EOF
  "$nginx_bin" -e "$work/nginx-gw.log" -p "$ng_dir" -c "$ng_dir/nginx.conf" >"$work/nginx-gw.out.log" 2>&1 &
  ng_pid=$!
  pids+=("$ng_pid")
  gw_wait "http://127.0.0.1:$ng_port/"
  ng_version=$("$nginx_bin" -v 2>&1 | sed 's|^nginx version: ||')
  gw_args+=(-target "nginx=http://127.0.0.1:$ng_port" -pid "nginx=$ng_pid" -version "nginx=$ng_version (Debian package)")
fi

# --- HAProxy ----------------------------------------------------------------
# Two threads, keep-alive on both sides, idle backend connections shared
# by every client connection (http-reuse always), no logging; the same
# request headers as Cairn and nginx add (X-Request-Id: HAProxy's UUID).
if gw_has haproxy; then
  hp_port=$("$bench" freeport)
  cat >"$work/haproxy.cfg" <<EOF
global
  nbthread 2
  maxconn 4096
defaults
  mode http
  maxconn 4096
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 120s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:$hp_port
  option forwardfor
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header X-Request-Id %[uuid] unless { req.hdr(x-request-id) -m found }
  http-request set-var(txn.rid) req.hdr(x-request-id)
  http-response set-header X-Request-Id %[var(txn.rid)]
  default_backend be
backend be
  balance roundrobin
  server b1 127.0.0.1:$be1_port
  server b2 127.0.0.1:$be2_port
EOF
  "$haproxy_bin" -c -q -f "$work/haproxy.cfg"
  "$haproxy_bin" -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
  hp_pid=$!
  pids+=("$hp_pid")
  gw_wait "http://127.0.0.1:$hp_port/"
  hp_version=$({ "$haproxy_bin" -v 2>&1 || true; } | head -1 | sed 's|^HAProxy version \([^ ]*\).*|HAProxy \1|')
  gw_args+=(-target "haproxy=http://127.0.0.1:$hp_port" -pid "haproxy=$hp_pid" -version "haproxy=$hp_version (Debian package)")
fi

# --- Go's httputil.ReverseProxy (reference) ---------------------------------
if gw_has go-httputil; then
  gp_port=$("$bench" freeport)
  ga_port=$("$bench" freeport)
  "$work/gwbackend" -listen "127.0.0.1:$gp_port" -upstreams "${backends// /,}" -admin "127.0.0.1:$ga_port" >"$work/go-httputil.log" 2>&1 &
  gp_pid=$!
  pids+=("$gp_pid")
  gw_wait "http://127.0.0.1:$gp_port/"
  gw_args+=(-target "go-httputil=http://127.0.0.1:$gp_port" -pid "go-httputil=$gp_pid"
    -version "go-httputil=$(go env GOVERSION) net/http/httputil (bench/cmd/gwbackend -upstreams)"
    -profile "go-httputil=http://127.0.0.1:$ga_port/debug/pprof/profile" -own "go-httputil=main.")
fi

# --- An event-loop proxy in Go (a measuring stick) ---------------------------
# cmd/evproxy: epoll loops on locked threads, the benchmark's path only
# (GET, Content-Length answers, the same added headers), nothing else: the
# floor of what Go does on this path without a goroutine per connection.
if gw_has go-epoll; then
  ev_port=$("$bench" freeport)
  "$work/evproxy" -listen "127.0.0.1:$ev_port" -upstreams "${backends// /,}" >"$work/go-epoll.log" 2>&1 &
  ev_pid=$!
  pids+=("$ev_pid")
  gw_wait "http://127.0.0.1:$ev_port/"
  gw_args+=(-target "go-epoll=http://127.0.0.1:$ev_port" -pid "go-epoll=$ev_pid"
    -version "go-epoll=$(go env GOVERSION) bench/cmd/evproxy (a prototype: epoll loops, no routing, retries or metrics)")
fi

# perf (Debian's linux-perf, not installed by run.sh) counts system calls
# per request, where it works.
gw_perf_args=()
gw_perf=$(command -v perf || true)
if [ -n "$gw_perf" ] && "$gw_perf" stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
  gw_perf_args=(-perf "$gw_perf")
fi
wrk_version=$({ "$wrk_bin" -v 2>&1 || true; } | head -1 | sed "s| Copyright.*||")
log "gateway: backends $backends (pids $be1_pid $be2_pid); targets ${gw_targets[*]}; $wrk_version"
"$bench" gateway "${gw_args[@]}" -backend-pids "$be1_pid,$be2_pid" -wrk "$wrk_bin" -wrk-version "$wrk_version" \
  -t "$gw_threads" -c "$gw_conns" -for "$gw_for" -warmup "$gw_warmup" -rounds "$gw_rounds" -profile-for "$gw_profile_for" \
  -rate "$gw_rate" -paced-c "$gw_paced_conns" -paced-for "$gw_paced_for" -paced-rounds "$gw_paced_rounds" \
  "${gw_perf_args[@]}" -workdir "$work" -out "$out/gateway.json" -raw "$out/gateway"
for p in "${pids[@]}"; do stop "$p"; done

{
  echo "Cairn gateway benchmark ($mode run)"
  echo
  echo "- command: $cmdline${GATEWAY_TARGETS:+ (GATEWAY_TARGETS=\"$GATEWAY_TARGETS\")}"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM"
  echo "- $(go version)"
  echo "- $wrk_version (Debian package); everything (wrk, proxy, both backends) on the same $(nproc) cores, nothing pinned, GOMAXPROCS default"
  if gw_has cairn; then
    if [ -n "${CAIRN_BIN:-}" ]; then
      echo "- cairn: prebuilt binary $CAIRN_BIN"
    else
      echo "- cairn: built from $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$root" && [ -z "$(git status --porcelain -- . ':!bench' 2>/dev/null)" ] || echo ' + uncommitted changes')"
    fi
    echo "- cairn proxy $cairn_proxy_flags (Route: the two backends by address, round_robin, other fields default)"
  fi
  if gw_has nginx; then echo "- nginx: worker_processes auto ($(nproc)), upstream keepalive 64 (per worker), proxy_http_version 1.1, Connection \"\", keepalive_requests unlimited both sides, access_log off, X-Forwarded-For/Proto/Host and X-Request-Id set as Cairn does (config in gateway.sh)"; fi
  if gw_has haproxy; then echo "- HAProxy: nbthread 2, option http-keep-alive, http-reuse always, no logging, X-Forwarded-For/Proto/Host and X-Request-Id (UUID) set as Cairn does (config in gateway.sh)"; fi
  if gw_has go-epoll; then echo "- go-epoll: bench/cmd/evproxy, one epoll loop per core on a locked thread (SO_REUSEPORT), raw reads only when readable, per-loop upstream pools, round robin, the same added headers; only GET/HEAD and Content-Length answers (a measuring stick, not a proxy)"; fi
  if gw_has go-httputil; then echo "- go-httputil: net/http/httputil.ReverseProxy, round robin, Transport with 64 idle connections per backend, a copy-buffer pool (reference, bench/cmd/gwbackend)"; fi
  echo "- machine busy before the run (3s sample): $busy_before cores; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  "$bench" gateway-report "$out/gateway.json"
  echo "Log lines (logs in ${out#"$root"/}):"
  echo
  echo "- $(cat "$work"/backend-*.log "$work"/nginx-gw.log "$work"/haproxy.log "$work"/go-httputil.log "$work"/cairn-proxy.log 2>/dev/null | wc -l) lines in all"
  if [ -f "$work/cairn-proxy.log" ]; then
    n=$(grep -c -E '"level":"(WARN|ERROR)"|level=(WARN|ERROR)' "$work/cairn-proxy.log" || true)
    echo "- cairn-proxy: $n lines at WARN or ERROR, $(wc -l <"$work/cairn-proxy.log") lines in all"
  fi
  for f in "$work"/nginx-gw.log "$work"/haproxy.log "$work"/go-httputil.log "$work"/backend-1.log "$work"/backend-2.log; do
    if [ -s "$f" ]; then echo "- $(basename "$f" .log): $(wc -l <"$f") lines"; fi
  done
  echo
} | tee "$out/summary.md"
