#!/usr/bin/env bash
# What a relay's second hop costs before any encryption or multiplexing: keep-alive HTTP
# (50 connections, requests/s and CPU per request of the path's own processes) and bulk
# (up and down, one stream or --streams N at once), in the same run, through
#   direct    sg-load's HTTP and bulk servers on loopback,
#   one hop   haproxy (plain TCP, one thread) in front of them,
#   two hops  a second haproxy in front of the first (a relay's shape: two processes, four
#             sockets per connection, no TLS, no framing),
#   sg        a node and a client with destinations to the same servers,
# each --rounds times for --duration seconds, with ratios. It is the reference for issue
# 13's goals against the one-hop path (docs/benchmarks.md, "Profiles"): sg is two hops plus
# TLS and multiplexing, so what two plain hops reach bounds what sg can reach here.
#   Usage: scripts/hops.sh [--duration SECS (default 4)] [--rounds N (default 2)]
#                          [--streams N (default 1)]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
duration=4; rounds=2; streams=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --streams) streams="$2"; shift 2 ;;
    *) echo "usage: scripts/hops.sh [--duration SECS] [--rounds N] [--streams N]"; exit 2 ;;
  esac
done
# Bounded: at most 30 s a measurement and 5 rounds of 16.
[ "$duration" -ge 1 ] && [ "$duration" -le 30 ] || { echo "hops: --duration is 1 to 30"; exit 2; }
[ "$rounds" -ge 1 ] && [ "$rounds" -le 5 ] || { echo "hops: --rounds is 1 to 5"; exit 2; }
[ "$streams" -ge 1 ] && [ "$streams" -le 64 ] || { echo "hops: --streams is 1 to 64"; exit 2; }

. scripts/lib/packages.sh
need_build_tools
need_command haproxy haproxy
need_command python3 python3
install_needed "for the hop comparison"
echo "==> building sg (release)"
cargo build --release -j2 --bins --quiet
bin="$root/target/release"

work=$(mktemp -d "${TMPDIR:-/tmp}/sg-hops.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_file() { for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "hops: $2 did not start (see $work)"; exit 1; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

"$bin/sg-load" --threads 1 bulk-server --listen 127.0.0.1:0 >"$work/bulk.out" 2>&1 & pids+=($!)
"$bin/sg-load" --threads 1 http-server --listen 127.0.0.1:0 >"$work/http.out" 2>&1 & pids+=($!)
wait_file "$work/bulk.out" "bulk server"; wait_file "$work/http.out" "HTTP server"
bulk=$(sed -n 's/^listening on 127.0.0.1://p' "$work/bulk.out")
http=$(sed -n 's/^listening on 127.0.0.1://p' "$work/http.out")

hop() { # NAME BULK_PORT BULK_UPSTREAM HTTP_PORT HTTP_UPSTREAM; sets hop_pid
  cat >"$work/$1.cfg" <<HAPROXY
global
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen bulk
  bind 127.0.0.1:$2
  server s 127.0.0.1:$3
listen http
  bind 127.0.0.1:$4
  server s 127.0.0.1:$5
HAPROXY
  haproxy -f "$work/$1.cfg" -db >"$work/$1.log" 2>&1 & hop_pid=$!; pids+=($hop_pid)
}
hop1=$(free_port); hop2=$(free_port); hop1_http=$(free_port); hop2_http=$(free_port)
hop first "$hop1" "$bulk" "$hop1_http" "$http"; hop1_pid=$hop_pid
hop second "$hop2" "$hop1" "$hop2_http" "$hop1_http"; hop2_pid=$hop_pid

"$bin/sg-node" --region hops --data-dir "$work/node" --tunnel-listen 127.0.0.1:0 --api-listen 127.0.0.1:0 \
  --cloud-host 127.0.0.1 --cloud-bind 127.0.0.1 -l WARN >"$work/node.log" 2>&1 & pids+=($!)
wait_file "$work/node/node.json" "sg-node"
ctl() { "$bin/sgctl" --data-dir "$work/node" --json "$@"; }
gw_json=$(ctl gateway create hops); gw=$(echo "$gw_json" | field '["id"]')
sg=$(ctl destination create "$gw" --name bulk --resource "127.0.0.1:$bulk" | field '["cloud_port"]')
sg_http=$(ctl destination create "$gw" --name http --resource "127.0.0.1:$http" | field '["cloud_port"]')
"$bin/sg-client" "$(echo "$gw_json" | field '["id"]')" -t "$(echo "$gw_json" | field '["token"]')" \
  --server "$(field '["tunnel"]' <"$work/node/node.json")" --ca "$work/node/ca.pem" -l WARN >"$work/client.log" 2>&1 & client_pid=$!; pids+=($client_pid)
node_pid=$(field '["pid"]' <"$work/node/node.json")
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$sg") 2>/dev/null && break; sleep 0.1; done
sleep 1 # the client's sessions come up

measure() { # PORT DIRECTION -> Gbit/s
  "$bin/sg-load" bulk --target "127.0.0.1:$1" --direction "$2" --connections "$streams" --duration "$duration" | field '["result"]["gbit_per_s"]'
}
keep_alive() { # PORT [PIDS] -> "requests/s CPU-µs-per-request" (CPU of the watched processes)
  "$bin/sg-load" http --target "127.0.0.1:$1" --duration "$duration" ${2:+--watch "$2"} |
    python3 -c "import json,sys; d=json.load(sys.stdin); print(d['result']['requests_per_s'], d['cpu_us_per_request'] or 0)"
}
row() { python3 -c "import sys; a=sys.argv[1:3]; v=[float(x) for x in sys.argv[3:]]; d,o,t,s=v; print('| ' + ' | '.join(a + [f'{x:.0f}' if x >= 1000 else f'{x:.1f}' for x in v] + [f'{t/d:.2f}x', f'{s/d:.2f}x', f'{s/t:.2f}x']) + ' |')" "$@"; }
cpu_row() { python3 -c "import sys; a=sys.argv[1:3]; o,t,s=[float(x) for x in sys.argv[3:]]; print(f'| {a[0]} | {a[1]} | - | {o:.1f} | {t:.1f} | {s:.1f} | {t/o:.2f}x one hop | - | {s/t:.2f}x |')" "$@"; }
printf '| round | figure | direct | one hop | two hops | sg | two hops vs | sg/direct | sg/two hops |\n'
printf '|---|---|---:|---:|---:|---:|---:|---:|---:|\n'
for round in $(seq 1 "$rounds"); do
  read -r d_rps _ <<<"$(keep_alive "$http")"
  read -r o_rps o_cpu <<<"$(keep_alive "$hop1_http" "$hop1_pid")"
  read -r t_rps t_cpu <<<"$(keep_alive "$hop2_http" "$hop1_pid,$hop2_pid")"
  read -r s_rps s_cpu <<<"$(keep_alive "$sg_http" "$node_pid,$client_pid")"
  row "$round" "keep-alive req/s" "$d_rps" "$o_rps" "$t_rps" "$s_rps"
  cpu_row "$round" "keep-alive CPU µs/request" "$o_cpu" "$t_cpu" "$s_cpu"
  for dir in up down; do
    row "$round" "bulk $dir Gbit/s" "$(measure "$bulk" "$dir")" "$(measure "$hop1" "$dir")" "$(measure "$hop2" "$dir")" "$(measure "$sg" "$dir")"
  done
done
echo "(50 keep-alive connections; bulk with $streams stream(s) at once; ${duration}s per measurement)"
