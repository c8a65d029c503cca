#!/usr/bin/env bash
# High-availability demo on loopback, printed as a timeline ([+SECONDS] lines):
#   a 3-member etcd, sg nodes in regions r1 and r2 (one cluster), a private HTTP service,
#   a gateway with one destination, two clients that are told only r1's address (they
#   learn r2 from it), traffic through both nodes' cloud addresses — then region r1 dies
#   (its node is killed with -9) and the traffic through r2 carries on.
# About 20 s after the build, everything bounded; stops every process it started on exit.
#   Usage: scripts/ha-demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "ha-demo: cargo is needed (https://rustup.rs)"; exit 1; }
. scripts/lib/packages.sh
need_build_tools
need_command etcd etcd-server
need_command curl curl
need_command python3 python3
install_needed "for the HA demo"
echo "==> building sg (release; the first build takes a few minutes)"
cargo build --release -j2 --bins --quiet
bin=target/release
work=$(mktemp -d "${TMPDIR:-/tmp}/sg-ha-demo.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 100); do # bounded: 10 s, then -9
    alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break; sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

t0=$(date +%s%3N)
say() { local ms=$(( $(date +%s%3N) - t0 )); printf '[+%d.%ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"; }
indent() { sed 's/^/           /'; }
fail() { say "FAILED: $* (logs in $work)"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json_field() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",}]*\)\"\{0,1\}.*/\1/p" | head -n1; }
wait_file() { for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.1; done; fail "$2 did not start"; }
count() { python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0; }

say "work directory $work (logs of every process)"

# ---- etcd -------------------------------------------------------------------------------
. scripts/lib/etcd.sh
start_etcd "sg-ha-demo-$$" || fail "etcd did not start"
endpoints="$etcd_endpoints"
say "etcd: 3 members healthy at $endpoints"

# ---- nodes ------------------------------------------------------------------------------
start_node() { # REGION CLOUD_IP
  "$bin/sg-node" --region "$1" --data-dir "$work/$1" --tunnel-listen "127.0.0.1:$(free_port)" \
    --api-listen "127.0.0.1:$(free_port)" --cloud-host "$2" --cloud-bind "$2" --cloud-ports 31300-31399 \
    --etcd "$endpoints" -l WARN >"$work/$1.log" 2>&1 &
  pids+=($!)
  wait_file "$work/$1/node.json" "sg-node $1"
}
start_node r1 127.0.0.11; r1_pid=${pids[-1]}
SG_ADMIN_TOKEN=$(cat "$work/r1/admin.token"); export SG_ADMIN_TOKEN
say "node r1 up (pid $r1_pid, cloud address 127.0.0.11): it created the cluster (admin token, CA)"
start_node r2 127.0.0.12; r2_pid=${pids[-1]}
say "node r2 up (pid $r2_pid, cloud address 127.0.0.12): it joined the cluster"
ctl1() { "$bin/sgctl" --data-dir "$work/r1" "$@"; }
ctl2() { "$bin/sgctl" --data-dir "$work/r2" --ca "$work/r1/ca.pem" "$@"; }

# ---- service, gateway, destination, clients ---------------------------------------------
"$bin/sg-load" --threads 1 http-server --listen 127.0.0.1:0 --body $'hello from the private service\n' \
  >"$work/service.out" 2>&1 &
pids+=($!)
wait_file "$work/service.out" "the private HTTP service"
service=$(sed -n 's/^listening on //p' "$work/service.out")
say "private HTTP service on $service (sg-load http-server)"
gw_json=$(ctl1 --json gateway create ha-demo)
gw=$(echo "$gw_json" | json_field id); token=$(echo "$gw_json" | json_field token)
dest_json=$(ctl1 --json destination create "$gw" --name web --resource "$service")
port=$(echo "$dest_json" | json_field cloud_port)
say "gateway $gw, destination web -> $service, cloud port $port on every node:"
echo "$dest_json" | python3 -c 'import json,sys
for a in json.load(sys.stdin)["cloud_addresses"]: print("  %s  %s:%s  (node %s)" % (a["region"], a["host"], a["port"], a["node_id"]))' | indent
r1_tunnel=$(json_field tunnel <"$work/r1/node.json")
for i in 1 2; do
  "$bin/sg-client" "$gw" -t "$token" --server "$r1_tunnel" --ca "$work/r1/ca.pem" --no-ui -l INFO \
    >"$work/client$i.log" 2>&1 &
  pids+=($!)
done
say "two clients started on gateway $gw, each given only r1's address ($r1_tunnel)"
sessions() { ctl1 --json gateway clients "$gw" 2>/dev/null | count; }
for _ in $(seq 1 200); do [ "$(sessions)" -ge 4 ] && break; sleep 0.1; done
[ "$(sessions)" -ge 4 ] || fail "the clients did not reach both nodes"
for ip in 127.0.0.11 127.0.0.12; do
  for _ in $(seq 1 100); do curl -fs --max-time 1 "http://$ip:$port/" >/dev/null && break; sleep 0.1; done
done
say "both clients learned r2 from r1 and hold sessions to both nodes"
say "sgctl node list:"
ctl1 node list | indent
say "sgctl gateway clients $gw:"
ctl1 gateway clients "$gw" | indent
say "curl http://127.0.0.12:$port/ -> $(curl -fsS --max-time 2 "http://127.0.0.12:$port/" || echo failed)"

# ---- traffic, and region r1 dies --------------------------------------------------------
# sg-load timeline: 4 workers, a new connection per request, two on r1's address and two on
# r2's (--pin-targets: like an application in each region, so connects to a dead address do
# not slow r2's workers); one line of counts a second, addresses shown as their regions.
# (The progress filter comes before the stdout redirection, so it writes to the terminal.)
"$bin/sg-load" --threads 1 timeline --target "127.0.0.11:$port" --target "127.0.0.12:$port" --pin-targets \
  --connections 4 --duration 12 --marks "$work/marks" --out "$work/timeline.json" --svg "$work/timeline.svg" \
  --progress \
  2> >(sed -u -e "s/127\.0\.0\.11:$port/r1/g" -e "s/127\.0\.0\.12:$port/r2/g" -e 's/^ *[0-9]* s: /traffic: /' |
       while IFS= read -r line; do say "$line"; done) \
  >"$work/timeline.out" &
traffic_pid=$!; pids+=($traffic_pid)
say "traffic: 12 s of requests, each on a new connection, to r1 (127.0.0.11:$port) and r2 (127.0.0.12:$port)"
sleep 4.2
echo "$(date +%s%3N) region r1 killed" >>"$work/marks"
say "KILLING REGION r1: kill -9 of node r1 (pid $r1_pid)"
{ kill -9 "$r1_pid"; wait "$r1_pid"; } 2>/dev/null || true
killed_at=$(date +%s%3N)

left_ms=""
for _ in $(seq 1 150); do # bounded: 15 s (the lease is 5 s)
  if [ "$(ctl2 --json node list 2>/dev/null | count)" = 1 ]; then left_ms=$(( $(date +%s%3N) - killed_at )); break; fi
  sleep 0.2
done
if [ -n "$left_ms" ]; then
  say "r1 left the cluster's node list $((left_ms / 1000)).$((left_ms % 1000 / 100)) s after the kill (its lease expired); sgctl node list, asked of r2:"
else
  say "r1 is still listed 15 s after the kill; sgctl node list, asked of r2:"
fi
ctl2 node list | indent
say "sgctl gateway clients $gw, asked of r2:"
ctl2 gateway clients "$gw" | indent

for _ in $(seq 1 200); do kill -0 "$traffic_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$traffic_pid" 2>/dev/null && fail "the traffic did not stop"
wait "$traffic_pid" || fail "sg-load timeline failed"
sleep 0.2 # the last progress line

# ---- summary ----------------------------------------------------------------------------
say "traffic done; per phase:"
sed -n '/^phase/,/^$/p' "$work/timeline.out" | sed '/^$/d' | indent
left_s=""; [ -z "$left_ms" ] || left_s="$((left_ms / 1000)).$((left_ms % 1000 / 100))"
python3 - "$work/timeline.json" "$left_s" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
before, after = t["phases"][0], t["phases"][-1]
ok = lambda p, i: p["requests_by_target"][i] - p["failures_by_target"][i]
print("\nSummary")
print("  before the kill (%.1f s): r1 %d ok, r2 %d ok, %d failed" % (before["to_s"], ok(before, 0), ok(before, 1), before["failures"]))
if len(t["phases"]) > 1:
    kinds = ", ".join("%s %d" % kv for kv in after["failures_by_kind"].items()) or "none"
    print("  after the kill  (%.1f s): r2 %d ok, %d failed  <- traffic through r2 carried on"
          % (after["to_s"] - after["from_s"], ok(after, 1), after["failures_by_target"][1]))
    print("                            r1 %d ok, %d failed (%s): its node is gone, nothing listens there"
          % (ok(after, 0), after["failures_by_target"][0], kinds))
if sys.argv[2]:
    print("  r1 left the node list %s s after the kill; the clients kept their sessions to r2" % sys.argv[2])
print("  cloud applications should use every region's address (DNS over the regions or a health-checked")
print("  load balancer): each node serves the same destinations on the same port.")
PY
say "demo done; stopping everything"
