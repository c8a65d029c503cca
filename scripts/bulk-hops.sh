#!/usr/bin/env bash
# What a second hop costs a bulk transfer before any encryption: up and down (one stream,
# or --streams N at once),
# in the same run, through
#   direct    sg-load's bulk server on loopback,
#   one hop   haproxy (plain TCP, one thread) in front of it,
#   two hops  a second haproxy in front of the first (a relay's shape, no TLS, no framing),
#   sg        a node and a client with a destination to the same server,
# each ROUNDS times for SECS seconds, with the ratio to the direct path. It is the reference
# for issue 13's bulk goal (docs/benchmarks.md, "Profiles"): sg is two hops plus TLS and
# multiplexing, so two plain hops bound what it can reach on this machine.
#   Usage: scripts/bulk-hops.sh [--duration SECS (default 4)] [--rounds N (default 2)]
#                               [--streams N (default 1)]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
duration=4; rounds=2; streams=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --streams) streams="$2"; shift 2 ;;
    *) echo "usage: scripts/bulk-hops.sh [--duration SECS] [--rounds N] [--streams N]"; exit 2 ;;
  esac
done
# Bounded: at most 30 s a measurement and 5 rounds (40 measurements).
[ "$duration" -ge 1 ] && [ "$duration" -le 30 ] || { echo "bulk-hops: --duration is 1 to 30"; exit 2; }
[ "$rounds" -ge 1 ] && [ "$rounds" -le 5 ] || { echo "bulk-hops: --rounds is 1 to 5"; exit 2; }
[ "$streams" -ge 1 ] && [ "$streams" -le 64 ] || { echo "bulk-hops: --streams is 1 to 64"; exit 2; }

. scripts/lib/packages.sh
need_build_tools
need_command haproxy haproxy
need_command python3 python3
install_needed "for the hop comparison"
echo "==> building sg (release)"
cargo build --release -j2 --bins --quiet
bin="$root/target/release"

work=$(mktemp -d "${TMPDIR:-/tmp}/sg-bulk-hops.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_file() { for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "bulk-hops: $2 did not start (see $work)"; exit 1; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

"$bin/sg-load" --threads 1 bulk-server --listen 127.0.0.1:0 >"$work/bulk.out" 2>&1 & pids+=($!)
wait_file "$work/bulk.out" "bulk server"
bulk=$(sed -n 's/^listening on 127.0.0.1://p' "$work/bulk.out")

hop() { # NAME LISTEN_PORT UPSTREAM_PORT
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
HAPROXY
  haproxy -f "$work/$1.cfg" -db >"$work/$1.log" 2>&1 & pids+=($!)
}
hop1=$(free_port); hop2=$(free_port)
hop first "$hop1" "$bulk"
hop second "$hop2" "$hop1"

"$bin/sg-node" --region hops --data-dir "$work/node" --tunnel-listen 127.0.0.1:0 --api-listen 127.0.0.1:0 \
  --cloud-host 127.0.0.1 --cloud-bind 127.0.0.1 -l WARN >"$work/node.log" 2>&1 & pids+=($!)
wait_file "$work/node/node.json" "sg-node"
ctl() { "$bin/sgctl" --data-dir "$work/node" --json "$@"; }
gw_json=$(ctl gateway create hops)
sg=$(ctl destination create "$(echo "$gw_json" | field '["id"]')" --name bulk --resource "127.0.0.1:$bulk" | field '["cloud_port"]')
"$bin/sg-client" "$(echo "$gw_json" | field '["id"]')" -t "$(echo "$gw_json" | field '["token"]')" \
  --server "$(field '["tunnel"]' <"$work/node/node.json")" --ca "$work/node/ca.pem" -l WARN >"$work/client.log" 2>&1 & pids+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$sg") 2>/dev/null && break; sleep 0.1; done
sleep 1 # the client's sessions come up

measure() { # PORT DIRECTION -> Gbit/s
  "$bin/sg-load" bulk --target "127.0.0.1:$1" --direction "$2" --connections "$streams" --duration "$duration" | field '["result"]["gbit_per_s"]'
}
printf '| round | direction | direct | one hop | two hops | sg | two hops/direct | sg/direct | sg/two hops |\n'
printf '|---|---|---:|---:|---:|---:|---:|---:|---:|\n'
for round in $(seq 1 "$rounds"); do
  for dir in up down; do
    d=$(measure "$bulk" "$dir"); one=$(measure "$hop1" "$dir"); two=$(measure "$hop2" "$dir"); s=$(measure "$sg" "$dir")
    python3 -c "import sys; r,dr,d,o,t,s=sys.argv[1:3]+[float(x) for x in sys.argv[3:]]; print(f'| {r} | {dr} | {d:.1f} | {o:.1f} | {t:.1f} | {s:.1f} | {t/d:.2f}x | {s/d:.2f}x | {s/t:.2f}x |')" \
      "$round" "$dir" "$d" "$one" "$two" "$s"
  done
done
echo "(Gbit/s, $streams stream(s) at once, ${duration}s per measurement)"
