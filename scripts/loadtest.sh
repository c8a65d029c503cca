#!/usr/bin/env bash
# Load-test harness: starts, on 127.0.0.1 only, target services (nginx from Debian, or
# sg-load's HTTP server; sg-load's bulk and echo servers), haproxy from Debian as a one-hop
# plain TCP proxy (the near-limit reference of a relay), an sg node and client, and with
# --peer rathole a rathole server and client with TLS; then measures every path in the same
# run, with sg-load and with wrk (Debian) as a second generator, and prints one table of
# figures, CPU per request of each path's own processes, and ratios (also JSON and SVG).
#
#   scripts/loadtest.sh [--peer rathole] [--duration SECS] [--connections N] [--hold N]
#                       [--destinations N] [--writes N] [--results DIR] [--quick] [--cluster]
#       --cluster: the sg node is a cluster node (a 3-member etcd on loopback), to compare
#       its data path with a single node's
#       --destinations N (default 10000, 0: none): a node of its own with N destinations:
#       restart until every cloud port listens, GET of the list, RSS per destination
#       --writes N (default 200): config writes timed on one node, then on a cluster of two
#       on etcd with the time until the other node shows each
#       --profile: perf records the node and the client during sg's wrk keep-alive and
#       bulk upload tests; flamegraphs (inferno) land in the results dir
#   scripts/loadtest.sh --failover [--connections N (default 32)] [--results DIR]
#       a 3-member etcd, nodes r1 and r2, three clients; a 14 s timeline of new connections
#       through both nodes while one client is killed (-9) at ~3 s and r2 drains at ~8 s
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

peer=""; duration=10; connections=""; hold=5000; destinations=10000; writes=200; profile=0; results="$root/results"; sessions=2; failover=0; cluster=0
while [ $# -gt 0 ]; do
  case "$1" in
    --peer) peer="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --hold) hold="$2"; shift 2 ;;
    --results) results="$2"; shift 2 ;;
    --sessions) sessions="$2"; shift 2 ;;
    --destinations) destinations="$2"; shift 2 ;;
    --writes) writes="$2"; shift 2 ;;
    --profile) profile=1; shift ;;
    --quick) duration=3; hold=1000; destinations=500; writes=50; shift ;;
    --failover) failover=1; shift ;;
    --cluster) cluster=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "loadtest: unknown argument $1 (see --help)"; exit 2 ;;
  esac
done
if [ -z "$connections" ]; then connections=50; if [ "$failover" = 1 ]; then connections=32; fi; fi
case "$peer" in ""|rathole) ;; *) echo "loadtest: --peer supports rathole"; exit 2 ;; esac
# Bounded: every measurement runs for a fixed time and the hold count is capped.
[ "$duration" -le 120 ] || { echo "loadtest: --duration is at most 120"; exit 2; }
[ "$hold" -le 20000 ] || { echo "loadtest: --hold is at most 20000"; exit 2; }
[ "$destinations" -le 10000 ] || { echo "loadtest: --destinations is at most 10000 (the default plan's cap)"; exit 2; }
[ "$writes" -ge 1 ] && [ "$writes" -le 10000 ] || { echo "loadtest: --writes is 1 to 10000"; exit 2; }
if [ "$failover" = 1 ]; then
  [ -z "$peer" ] || { echo "loadtest: --failover runs sg only (no --peer)"; exit 2; }
  [ "$connections" -le 512 ] || { echo "loadtest: --connections is at most 512"; exit 2; }
fi

say() { printf '\033[1m[loadtest %s]\033[0m %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
sudo_=""; [ "$(id -u)" -ne 0 ] && sudo_="sudo"
apt_install() {
  say "installing $* from Debian"
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# Each process holds one end of each held connection (the load generator, the node, the
# client, the echo server), and the descriptor limit is per process.
[ "$failover" = 1 ] || [ "$(ulimit -n)" -ge $((hold + 500)) ] || { echo "loadtest: ulimit -n $(ulimit -n) is too low for --hold $hold"; exit 2; }

command -v nginx >/dev/null || apt_install nginx-light || say "nginx unavailable: using sg-load's HTTP server"
if [ "$failover" = 0 ]; then
  command -v haproxy >/dev/null || apt_install haproxy || say "haproxy unavailable: no one-hop path"
  command -v wrk >/dev/null || apt_install wrk || say "wrk unavailable: sg-load is the only generator"
fi
# etcd for the failover timeline, a cluster data path, and the control plane's cluster figure.
. scripts/lib/packages.sh
need_build_tools
need_command etcd etcd-server
need_command curl curl
need_command python3 python3
install_needed "for the etcd cluster"
say "building sg (release)"
cargo build --release -j2 --bins --quiet
bin="$root/target/release"

if [ "$peer" = rathole ]; then
  rathole=$(command -v rathole || true)
  [ -n "$rathole" ] || rathole="$root/target/peers/bin/rathole"
  if [ ! -x "$rathole" ]; then
    { command -v pkg-config >/dev/null && dpkg -s libssl-dev >/dev/null 2>&1; } || apt_install pkg-config libssl-dev
    say "installing rathole from crates.io (with TLS) into target/peers"
    cargo install -j2 --quiet --root "$root/target/peers" rathole --no-default-features --features server,client,tls
  fi
fi

if [ "$profile" = 1 ]; then
  command -v perf >/dev/null || apt_install linux-perf
  flame="$root/target/peers/bin/inferno-flamegraph"
  if [ ! -x "$flame" ]; then
    say "installing inferno (flamegraphs) from crates.io into target/peers"
    cargo install -j2 --quiet --root "$root/target/peers" inferno
  fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sg-loadtest.XXXXXX")
mkdir -p "$results"
stamp=$(date +%Y%m%d-%H%M%S)
[ "$cluster" = 1 ] && stamp="$stamp-cluster"
out="$results/loadtest-$stamp.jsonl"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx/nginx.pid" ] && kill "$(cat "$work/nginx/nginx.pid")" 2>/dev/null || true
  # Bounded: whatever has not stopped 15 s after SIGTERM is killed.
  for _ in $(seq 1 150); do
    alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break; sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_file() { for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "loadtest: $2 did not start (see $work)"; exit 1; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "loadtest: nothing listens on $1 ($2)"; exit 1; }
json_field() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",}]*\)\"\{0,1\}.*/\1/p" | head -n1; }

# ---- targets ----------------------------------------------------------------------------
http_port=$(free_port)
if command -v nginx >/dev/null; then
  mkdir -p "$work/nginx/logs"
  cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 30000; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  server { listen 127.0.0.1:$http_port; location / { return 200 "hello from nginx behind sg\n"; } }
}
NGINX
  nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/logs/error.log"
  http_target="nginx"
else
  "$bin/sg-load" --threads 1 http-server --listen "127.0.0.1:$http_port" >"$work/http.out" 2>&1 &
  pids+=($!); http_target="sg-load http-server"
fi
wait_port "$http_port" "$http_target"

# A 3-member etcd on loopback; sets etcd_clients (the endpoints for --etcd).
. scripts/lib/etcd.sh
etcd_clients=""
etcd_up() {
  [ -z "$etcd_clients" ] || return 0
  start_etcd "sg-loadtest-$$" || exit 1
  etcd_clients="$etcd_endpoints"
  say "etcd: 3 members healthy ($etcd_clients)"
}

# ---- --failover: a timeline through two nodes while a client dies and a node drains ----
if [ "$failover" = 1 ]; then
  wait_http() { # URL WHAT: bounded to 20 s
    for _ in $(seq 1 200); do curl -fs --max-time 1 "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "loadtest: $2 does not answer at $1 (see $work)"; exit 1
  }
  mark() { echo "$(date +%s%3N) $*" >>"$work/marks"; say "mark: $*"; }
  fo_duration=14

  etcd_up

  # Two nodes: r1 creates the cluster, r2 joins. Same port range, each on its own address.
  start_node() { # REGION IP
    "$bin/sg-node" --region "$1" --data-dir "$work/$1" --tunnel-listen "127.0.0.1:$(free_port)" \
      --api-listen "127.0.0.1:$(free_port)" --cloud-host "$2" --cloud-bind "$2" --cloud-ports 31200-31299 \
      --etcd "$etcd_clients" --drain-grace 2 --drain-timeout 10 -l WARN >"$work/$1.log" 2>&1 &
    pids+=($!)
    wait_file "$work/$1/node.json" "sg-node $1"
  }
  start_node r1 127.0.0.11; r1_pid=${pids[-1]}
  SG_ADMIN_TOKEN=$(cat "$work/r1/admin.token"); export SG_ADMIN_TOKEN
  start_node r2 127.0.0.12; r2_pid=${pids[-1]}
  ctl() { "$bin/sgctl" --data-dir "$work/r1" --json "$@"; }
  gw_json=$(ctl gateway create failover)
  gw=$(echo "$gw_json" | json_field id); token=$(echo "$gw_json" | json_field token)
  ctl plan set --max-connections-per-gateway 100000 >/dev/null
  port=$(ctl destination create "$gw" --name http --resource "127.0.0.1:$http_port" | json_field cloud_port)
  say "nodes: r1 pid $r1_pid on 127.0.0.11, r2 pid $r2_pid on 127.0.0.12; gateway $gw, destination on port $port of both"

  # Three clients, one session to each node each; given r1 only, they learn r2 from it.
  client_pids=()
  for i in 1 2 3; do
    "$bin/sg-client" "$gw" -t "$token" --server "$(json_field tunnel <"$work/r1/node.json")" \
      --ca "$work/r1/ca.pem" --sessions 1 --no-ui -l INFO >"$work/client$i.log" 2>&1 &
    pids+=($!); client_pids+=($!)
  done
  sessions_now() { ctl gateway clients "$gw" 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0; }
  for _ in $(seq 1 200); do [ "$(sessions_now)" -ge 6 ] && break; sleep 0.1; done
  [ "$(sessions_now)" -ge 6 ] || { echo "loadtest: the clients did not reach both nodes (see $work)"; exit 1; }
  wait_http "http://127.0.0.11:$port/" "node r1"; wait_http "http://127.0.0.12:$port/" "node r2"
  say "clients: pids ${client_pids[*]}, 3 clients x 2 nodes = $(sessions_now) sessions"
  "$bin/sgctl" --data-dir "$work/r1" gateway clients "$gw" >&2

  # The timeline, and what breaks during it.
  json="$results/failover-$stamp.json"; svg="$results/failover-$stamp.svg"
  say "timeline: ${fo_duration}s, $connections workers, a new connection per request to 127.0.0.11:$port and 127.0.0.12:$port"
  "$bin/sg-load" --threads 2 timeline --target "127.0.0.11:$port" --target "127.0.0.12:$port" \
    --connections "$connections" --duration "$fo_duration" --bucket-ms 100 --marks "$work/marks" \
    --out "$json" --svg "$svg" >"$work/timeline.out" 2>"$work/timeline.err" &
  timeline_pid=$!; pids+=($timeline_pid)
  sleep 3
  # Each mark is written just before its action: requests in flight at that moment started
  # a few ms earlier and count in the phase before (phases go by start time).
  mark "client killed -9"; { kill -9 "${client_pids[0]}"; wait "${client_pids[0]}"; } 2>/dev/null || true
  sleep 5
  mark "node r2 drains"; kill -TERM "$r2_pid"
  drain_start=$(date +%s%3N)
  r2_exit=""
  for _ in $(seq 1 150); do # the drain is bounded by --drain-grace 2 + --drain-timeout 10
    if ! kill -0 "$r2_pid" 2>/dev/null; then
      wait "$r2_pid" && r2_exit=0 || r2_exit=$?
      break
    fi
    sleep 0.1
  done
  drain_ms=$(( $(date +%s%3N) - drain_start ))
  for _ in $(seq 1 300); do kill -0 "$timeline_pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$timeline_pid" 2>/dev/null && { echo "loadtest: the timeline did not finish (see $work)"; exit 1; }
  wait "$timeline_pid" || { echo "loadtest: sg-load timeline failed:"; cat "$work/timeline.err"; exit 1; }
  say "done; results in $results/failover-$stamp.{json,svg}"
  echo
  cat "$work/timeline.out"
  echo
  if [ -n "$r2_exit" ]; then echo "node r2 after SIGTERM: exited with status $r2_exit after $drain_ms ms"
  else echo "node r2 after SIGTERM: still running after $drain_ms ms"; fi
  echo "sessions of gateway $gw now (r1 answering):"
  "$bin/sgctl" --data-dir "$work/r1" gateway clients "$gw" || true
  cp "$json" "$results/failover-latest.json"; cp "$svg" "$results/failover-latest.svg"
  exit 0
fi
"$bin/sg-load" --threads 1 bulk-server --listen 127.0.0.1:0 >"$work/bulk.out" 2>&1 & pids+=($!)
"$bin/sg-load" --threads 1 echo-server --listen 127.0.0.1:0 >"$work/echo.out" 2>&1 & pids+=($!)
wait_file "$work/bulk.out" "bulk server"; wait_file "$work/echo.out" "echo server"
bulk_port=$(sed -n 's/^listening on 127.0.0.1://p' "$work/bulk.out")
echo_port=$(sed -n 's/^listening on 127.0.0.1://p' "$work/echo.out")
say "targets: $http_target on :$http_port, bulk on :$bulk_port, echo on :$echo_port"

# ---- sg ---------------------------------------------------------------------------------
cluster_args=()
if [ "$cluster" = 1 ]; then
  etcd_up
  cluster_args=(--etcd "$etcd_clients")
fi
"$bin/sg-node" --region loadtest --data-dir "$work/node" --tunnel-listen 127.0.0.1:0 --api-listen 127.0.0.1:0 \
  --cloud-host 127.0.0.1 --cloud-bind 127.0.0.1 --cloud-ports 31000-31100 "${cluster_args[@]}" -l WARN >"$work/node.log" 2>&1 &
node_pid=$!; pids+=($node_pid)
wait_file "$work/node/node.json" "sg-node"
ctl() { "$bin/sgctl" --data-dir "$work/node" --json "$@"; }
gw_json=$(ctl gateway create loadtest)
gw=$(echo "$gw_json" | json_field id); token=$(echo "$gw_json" | json_field token)
ctl plan set --max-connections-per-gateway 100000 >/dev/null
sg_http=$(ctl destination create "$gw" --name http --resource "127.0.0.1:$http_port" | json_field cloud_port)
sg_bulk=$(ctl destination create "$gw" --name bulk --resource "127.0.0.1:$bulk_port" | json_field cloud_port)
sg_echo=$(ctl destination create "$gw" --name echo --resource "127.0.0.1:$echo_port" | json_field cloud_port)
"$bin/sg-client" "$gw" -t "$token" --server "$(json_field tunnel <"$work/node/node.json")" \
  --ca "$work/node/ca.pem" --sessions "$sessions" -l WARN >"$work/client.log" 2>&1 &
client_pid=$!; pids+=($client_pid)
for _ in $(seq 1 100); do curl -fs --max-time 1 "http://127.0.0.1:$sg_http/" >/dev/null && break; sleep 0.1; done
say "sg: node pid $node_pid, client pid $client_pid ($sessions sessions), cloud ports $sg_http/$sg_bulk/$sg_echo"

# ---- one hop ----------------------------------------------------------------------------
# haproxy in plain TCP mode, one thread: what a single proxy hop costs with no encryption,
# the reference a relay (two hops, TLS between them) is measured against.
onehop=""
if command -v haproxy >/dev/null; then
  hp_http=$(free_port); hp_bulk=$(free_port); hp_echo=$(free_port)
  cat >"$work/haproxy.cfg" <<HAPROXY
global
  nbthread 1
  maxconn 9000
defaults
  mode tcp
  timeout connect 5s
  timeout client 120s
  timeout server 120s
listen http
  bind 127.0.0.1:$hp_http
  server s 127.0.0.1:$http_port
listen bulk
  bind 127.0.0.1:$hp_bulk
  server s 127.0.0.1:$bulk_port
listen echo
  bind 127.0.0.1:$hp_echo
  server s 127.0.0.1:$echo_port
HAPROXY
  haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 & onehop_pid=$!; pids+=($onehop_pid)
  wait_port "$hp_http" "haproxy"
  onehop=haproxy
  say "one hop: haproxy pid $onehop_pid (plain TCP, one thread)"
fi

# ---- peer -------------------------------------------------------------------------------
if [ "$peer" = rathole ]; then
  mkdir -p "$work/rathole"; cd "$work/rathole"
  # ECDSA P-256, as in the published rathole figures.
  openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
  openssl req -x509 -new -key ca.key -subj /CN=loadtest-ca -days 2 -out ca.pem 2>/dev/null
  openssl ecparam -name prime256v1 -genkey -noout -out server.key 2>/dev/null
  openssl req -new -key server.key -subj /CN=localhost -out server.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out server.pem 2>/dev/null
  openssl pkcs12 -export -out identity.pfx -inkey server.key -in server.pem -certfile ca.pem -passout pass:sgbench
  rt_port=$(free_port); rt_http=$(free_port); rt_bulk=$(free_port); rt_echo=$(free_port)
  cat >server.toml <<TOML
[server]
bind_addr = "127.0.0.1:$rt_port"
default_token = "loadtest"
[server.transport]
type = "tls"
[server.transport.tls]
pkcs12 = "identity.pfx"
pkcs12_password = "sgbench"
[server.services.http]
bind_addr = "127.0.0.1:$rt_http"
[server.services.bulk]
bind_addr = "127.0.0.1:$rt_bulk"
[server.services.echo]
bind_addr = "127.0.0.1:$rt_echo"
TOML
  cat >client.toml <<TOML
[client]
remote_addr = "localhost:$rt_port"
default_token = "loadtest"
[client.transport]
type = "tls"
[client.transport.tls]
trusted_root = "ca.pem"
hostname = "localhost"
[client.services.http]
local_addr = "127.0.0.1:$http_port"
[client.services.bulk]
local_addr = "127.0.0.1:$bulk_port"
[client.services.echo]
local_addr = "127.0.0.1:$echo_port"
TOML
  RUST_LOG=warn "$rathole" --server server.toml >server.log 2>&1 & peer_server=$!; pids+=($peer_server)
  RUST_LOG=warn "$rathole" --client client.toml >client.log 2>&1 & peer_client=$!; pids+=($peer_client)
  cd "$root"
  for _ in $(seq 1 100); do curl -fs --max-time 1 "http://127.0.0.1:$rt_http/" >/dev/null && break; sleep 0.1; done
  say "rathole (TLS): server pid $peer_server, client pid $peer_client"
fi

# ---- measurements -----------------------------------------------------------------------
paths="direct ${onehop} sg ${peer}"
target_of() { # path kind -> port
  case "$1:$2" in
    direct:http) echo "$http_port" ;; direct:bulk) echo "$bulk_port" ;; direct:echo) echo "$echo_port" ;;
    sg:http) echo "$sg_http" ;; sg:bulk) echo "$sg_bulk" ;; sg:echo) echo "$sg_echo" ;;
    rathole:http) echo "$rt_http" ;; rathole:bulk) echo "$rt_bulk" ;; rathole:echo) echo "$rt_echo" ;;
    haproxy:http) echo "$hp_http" ;; haproxy:bulk) echo "$hp_bulk" ;; haproxy:echo) echo "$hp_echo" ;;
  esac
}
watch_of() {
  case "$1" in
    sg) echo "$node_pid,$client_pid" ;; rathole) echo "$peer_server,$peer_client" ;;
    haproxy) echo "$onehop_pid" ;; *) echo "" ;;
  esac
}
load() { "$bin/sg-load" --threads 2 "$@" --out "$out" >/dev/null; }
# --profile: sample the node and the client (cpu-clock: this machine has no hardware
# counters; DWARF call graphs, since release builds keep no frame pointers) for 4 s in the
# middle of a test, then fold the stacks into one flamegraph per process.
profile_start() { # TEST
  prof_pids=()
  [ "$profile" = 1 ] || return 0
  for who in node client; do
    pid=$node_pid; [ "$who" = client ] && pid=$client_pid
    (sleep 2; exec perf record -q -e cpu-clock -F 250 --call-graph dwarf,16384 -p "$pid" \
      -o "$work/perf-$1-$who.data" -- sleep 4) >/dev/null 2>&1 &
    prof_pids+=($!)
  done
}
profile_finish() { # TEST
  [ "$profile" = 1 ] || return 0
  for p in "${prof_pids[@]}"; do wait "$p" || true; done
  for who in node client; do
    data="$work/perf-$1-$who.data"
    [ -s "$data" ] || { say "profile: no samples for $who in $1"; continue; }
    perf script -i "$data" 2>/dev/null | "$root/target/peers/bin/inferno-collapse-perf" >"$work/$1-$who.folded"
    "$flame" --title "sg-$who during $1 (cpu-clock, $(date +%F))" <"$work/$1-$who.folded" >"$results/flamegraph-$1-$who.svg"
    python3 scripts/lib/profile_summary.py "$work/$1-$who.folded" >"$results/profile-$1-$who.txt"
    say "profile: $results/flamegraph-$1-$who.svg; where the time went:"
    cat "$results/profile-$1-$who.txt" >&2
  done
}
tests="keep_alive new_connection bulk_up bulk_down bulk_up_parallel bulk_down_parallel"
command -v wrk >/dev/null && tests="keep_alive wrk_keep_alive ${tests#keep_alive }"
held_paths="sg $peer"
steps=$(( $(echo $paths | wc -w) * $(echo $tests | wc -w) + $(echo $held_paths | wc -w) ))
step=0
next() { step=$((step + 1)); say "[$step/$steps] $*"; }
for test in $tests; do
  for p in $paths; do
    port=$(target_of "$p" http); w=$(watch_of "$p")
    profiled=""
    if [ "$p" = sg ] && { [ "$test" = wrk_keep_alive ] || [ "$test" = bulk_up ]; }; then
      profiled=$test; profile_start "$test"
    fi
    case "$test" in
      keep_alive) next "$p: keep-alive HTTP, $connections connections, ${duration}s"
        load http --target "127.0.0.1:$port" --connections "$connections" --duration "$duration" --label "$p" ${w:+--watch "$w"} ;;
      wrk_keep_alive) next "$p: wrk, keep-alive HTTP, $connections connections, 2 threads, ${duration}s"
        load wrk --target "127.0.0.1:$port" --connections "$connections" --duration "$duration" --label "$p" ${w:+--watch "$w"} ;;
      new_connection) next "$p: a new connection per request, $connections at once, ${duration}s"
        load http --new-conn --target "127.0.0.1:$port" --connections "$connections" --duration "$duration" --label "$p" ${w:+--watch "$w"} ;;
      bulk_up|bulk_down) dir=${test#bulk_}; next "$p: bulk $dir, one connection, ${duration}s"
        load bulk --direction "$dir" --target "127.0.0.1:$(target_of "$p" bulk)" --duration "$duration" --label "$p" ${w:+--watch "$w"} ;;
      bulk_*_parallel) dir=${test#bulk_}; dir=${dir%_parallel}; next "$p: bulk $dir, 8 connections at once, ${duration}s"
        load bulk --direction "$dir" --connections 8 --target "127.0.0.1:$(target_of "$p" bulk)" --duration "$duration" --label "$p" ${w:+--watch "$w"} ;;
    esac
    [ -z "$profiled" ] || profile_finish "$profiled"
    sleep 1
  done
done
for p in $held_paths; do
  next "$p: hold $hold idle connections, RSS of both ends, then keep-alive HTTP while they are held"
  load hold --target "127.0.0.1:$(target_of "$p" echo)" --connections "$hold" --label "$p" --watch "$(watch_of "$p")" \
    --http-target "127.0.0.1:$(target_of "$p" http)" --http-connections "$connections" --http-duration "$duration"
done

# ---- control plane ---------------------------------------------------------------------
# Nodes of their own, so the data-path node above keeps what it measured: config writes on
# one node (it flushes before it answers), many destinations on that node and its restart,
# then writes on a cluster of two nodes on etcd and how long the other node takes to show
# each. Cloud ports come from 20000-30999, below the kernel's ephemeral range.
cp_ports=20000-30999
start_cp_node() { # NAME IP [ARGS...]: sets cp_pid
  local name="$1" ip="$2"; shift 2
  "$bin/sg-node" --region "$name" --data-dir "$work/$name" --tunnel-listen 127.0.0.1:0 --api-listen 127.0.0.1:0 \
    --cloud-host "$ip" --cloud-bind "$ip" --cloud-ports "$cp_ports" --drain-grace 0 --drain-timeout 1 \
    "$@" -l WARN >>"$work/$name.log" 2>&1 &
  cp_pid=$!; pids+=($cp_pid)
}
stop_cp_node() { # PID: SIGTERM, bounded to 15 s
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true
}
cp_steps=2; [ "$destinations" -gt 0 ] && cp_steps=4
steps=$((steps + cp_steps))
next "control plane: $writes config writes on one node"
start_cp_node cp 127.0.0.1; wait_file "$work/cp/node.json" "sg-node (control plane)"
cp_gw=$("$bin/sgctl" --data-dir "$work/cp" --json gateway create control-plane | json_field id)
"$bin/sg-load" control-writes --data-dir "$work/cp" --gateway "$cp_gw" --resource "127.0.0.1:$http_port" \
  --writes "$writes" --label sg --out "$out" >/dev/null
if [ "$destinations" -gt 0 ]; then
  next "control plane: $destinations destinations (500 per gateway, the most one holds), GET of a full list"
  sleep 1 # the baseline RSS of a node that has settled
  fill=$("$bin/sg-load" destinations --data-dir "$work/cp" --resource "127.0.0.1:$http_port" \
    --count "$destinations" --label sg --watch "$cp_pid" --out "$out")
  baseline=$(echo "$fill" | json_field rss_before_kib)
  list_gw=$(echo "$fill" | json_field list_gateway)
  next "control plane: restart with $destinations destinations until every cloud port listens"
  stop_cp_node "$cp_pid"
  started_ms=$(date +%s%3N)
  start_cp_node cp 127.0.0.1
  "$bin/sg-load" destinations-restart --data-dir "$work/cp" --gateway "$list_gw" --ports "$cp_ports" \
    --count "$destinations" --started-ms "$started_ms" --baseline-rss-kib "${baseline:-0}" \
    --label sg --watch "$cp_pid" --out "$out" >/dev/null
fi
stop_cp_node "$cp_pid"
next "control plane: $writes config writes on a cluster of two nodes on etcd, and when the other node shows each"
etcd_up
start_cp_node cpa 127.0.0.1 --etcd "$etcd_clients"; cpa_pid=$cp_pid; wait_file "$work/cpa/node.json" "sg-node cpa"
start_cp_node cpb 127.0.0.2 --etcd "$etcd_clients"; cpb_pid=$cp_pid; wait_file "$work/cpb/node.json" "sg-node cpb"
cpc_gw=$("$bin/sgctl" --data-dir "$work/cpa" --json gateway create control-plane-cluster | json_field id)
"$bin/sg-load" control-writes --data-dir "$work/cpa" --peer-data-dir "$work/cpb" --gateway "$cpc_gw" \
  --resource "127.0.0.1:$http_port" --writes "$writes" --label sg --out "$out" >/dev/null
stop_cp_node "$cpb_pid"; stop_cp_node "$cpa_pid"

say "done; results in $results/loadtest-$stamp.{jsonl,json,svg}"
echo
"$bin/sg-load" report --input "$out" --json "$results/loadtest-$stamp.json" --svg "$results/loadtest-$stamp.svg"
cp "$results/loadtest-$stamp.json" "$results/latest.json"; cp "$results/loadtest-$stamp.svg" "$results/latest.svg"
