#!/usr/bin/env bash
# Runs a complete sg on loopback with no configuration: a relay node, a private HTTP
# service, a gateway with a destination for it, and a client carrying it. Prints the cloud
# address to try and keeps running until Ctrl-C.   Usage: scripts/quickstart.sh [--once]
set -euo pipefail
cd "$(dirname "$0")/.."
once=0; [ "${1:-}" = "--once" ] && once=1

command -v cargo >/dev/null || { echo "quickstart: cargo is needed (https://rustup.rs)"; exit 1; }
. scripts/lib/packages.sh
need_build_tools
need_command curl curl
install_needed "to build sg and try the tunnel"
echo "==> building sg (release; the first build takes a few minutes)"
cargo build --release -j2 --bins --quiet
bin=target/release
work=$(mktemp -d "${TMPDIR:-/tmp}/sg-quickstart.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

json_field() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",}]*\)\"\{0,1\}.*/\1/p" | head -n1; }
wait_for() { for _ in $(seq 1 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "quickstart: $2 did not start; see $work"; exit 1; }

echo "==> starting the relay node (data in $work/node)"
"$bin/sg-node" --region local --data-dir "$work/node" --tunnel-listen 127.0.0.1:0 \
  --api-listen 127.0.0.1:0 --cloud-host 127.0.0.1 --cloud-bind 127.0.0.1 >"$work/node.log" 2>&1 &
pids+=($!)
wait_for "$work/node/node.json" "sg-node"
tunnel=$(json_field tunnel <"$work/node/node.json")
ctl() { "$bin/sgctl" --data-dir "$work/node" "$@"; }

echo "==> starting a private HTTP service (the demo destination)"
"$bin/sg-load" http-server --listen 127.0.0.1:0 >"$work/service.out" 2>&1 &
pids+=($!)
wait_for "$work/service.out" "the demo service"
service=$(sed -n 's/^listening on //p' "$work/service.out")

echo "==> creating a gateway and a destination for $service"
gw_json=$(ctl --json gateway create quickstart)
gw=$(echo "$gw_json" | json_field id)
token=$(echo "$gw_json" | json_field token)
dest_json=$(ctl --json destination create "$gw" --name demo --resource "$service")
cloud_port=$(echo "$dest_json" | json_field cloud_port)

echo "==> starting the client for gateway $gw"
"$bin/sg-client" "$gw" -t "$token" --server "$tunnel" --ca "$work/node/ca.pem" >"$work/client.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  if out=$(curl -fsS --max-time 2 "http://127.0.0.1:$cloud_port/" 2>/dev/null); then break; fi
  sleep 0.1
done
[ -n "${out:-}" ] || { echo "quickstart: no answer through the tunnel; logs in $work"; exit 1; }

cat <<MSG

sg is running on loopback.
  cloud address:   http://127.0.0.1:$cloud_port/   ->  private service $service
  it answered:     $out
  try:             curl http://127.0.0.1:$cloud_port/
  manage:          $bin/sgctl --data-dir $work/node gateway list
  logs:            $work/{node,client}.log
MSG
[ "$once" = 1 ] && exit 0
echo "Ctrl-C stops everything."
wait
