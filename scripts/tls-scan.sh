#!/usr/bin/env bash
# Scans sg's TLS listeners with testssl.sh (Debian's testssl.sh package) and prints every
# finding rated HIGH or CRITICAL.
#   1. A node with its own CA, scanned as a stranger would (the CA is not trusted): the
#      tunnel port, the API and a TLS cloud port. Allowed: the two findings any private CA
#      gets (cert_chain_of_trust: self-signed CA; cert_revocation: no CRL or OCSP).
#   2. The same with an operator certificate (--tls-cert, and the same certificate on the
#      cloud port) from a test CA the scan trusts (--add-ca): nothing at all is allowed.
# Exits 1 when a finding is not allowed. Bounded: each scan stops after 10 minutes.
#   Usage: scripts/tls-scan.sh [--fast]    (--fast: testssl's --fast, about half the time)
set -euo pipefail
cd "$(dirname "$0")/.."

fast=()
[ "${1:-}" = "--fast" ] && fast=(--fast)
. scripts/lib/packages.sh
need_build_tools
need_command testssl testssl.sh
need_command openssl openssl
need_command curl curl
need_command python3 python3
install_needed "for the TLS scan"
echo "==> building sg (release)"
cargo build --release -j2 --bins --quiet
bin=target/release
work=$(mktemp -d "${TMPDIR:-/tmp}/sg-tls-scan.XXXXXX")
pids=()
cleanup() {
  [ ${#pids[@]} -gt 0 ] || return 0
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_file() { for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "$2 did not start (see $work)"; exit 1; }

# start_node NAME [extra flags...]: sets tunnel, api, token, ca for the node.
start_node() {
  local name=$1; shift
  tunnel_port=$(free_port); api_port=$(free_port)
  "$bin/sg-node" --region scan --data-dir "$work/$name" --tunnel-listen "127.0.0.1:$tunnel_port" \
    --api-listen "127.0.0.1:$api_port" --cloud-host 127.0.0.1 --cloud-bind 127.0.0.1 \
    --cloud-ports 31800-31899 -l WARN "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  wait_file "$work/$name/node.json" "sg-node $name"
  token=$(cat "$work/$name/admin.token")
}

# api CA METHOD PATH [BODY]
api() {
  curl -sS --cacert "$1" -X "$2" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' ${4:+--data "$4"} "https://127.0.0.1:$api_port$3"
}

# A private HTTP service for the TLS destinations, so the cloud port answers as in use.
service_port=$(free_port)
python3 -m http.server --bind 127.0.0.1 "$service_port" >"$work/service.log" 2>&1 &
service_pid=$!
trap 'cleanup; kill $service_pid 2>/dev/null || true' EXIT INT TERM

# tls_destination CA CLOUD_TLS_JSON: a gateway with one TLS destination onto the service,
# served by an sg-client; sets cloud (its port).
tls_destination() {
  local gw_json gw gw_token
  gw_json=$(api "$1" POST /v1/gateways '{"name":"scan"}')
  gw=$(echo "$gw_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  gw_token=$(echo "$gw_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  cloud=$(api "$1" POST "/v1/gateways/$gw/destinations" \
    "{\"name\":\"tls\",\"resource_host\":\"127.0.0.1\",\"resource_port\":$service_port,\"cloud_tls\":$2}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["cloud_port"])')
  "$bin/sg-client" "$gw" -t "$gw_token" --server "127.0.0.1:$tunnel_port" --ca "$1" --no-ui \
    -l WARN >"$work/client-$gw.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    [ "$(api "$1" GET "/v1/gateways/$gw/clients" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" != 0 ] && return 0
    sleep 0.1
  done
  echo "the scan's client did not connect (see $work)"; exit 1
}

failed=0
# scan LABEL PORT ALLOWED_IDS [testssl flags...]
scan() {
  local label=$1 port=$2 allowed=$3; shift 3
  local json="$work/$label.json"
  echo "==> testssl: $label (127.0.0.1:$port)"
  timeout 600 testssl --quiet --color 0 --warnings off --severity HIGH "${fast[@]}" \
    --jsonfile "$json" "$@" "127.0.0.1:$port" >"$work/$label.txt" 2>&1 || true
  [ -s "$json" ] || { echo "    no result (see $work/$label.txt)"; failed=1; return; }
  python3 - "$json" "$allowed" <<'EOF' || failed=1
import json, sys
findings = json.load(open(sys.argv[1]))
allowed = set(filter(None, sys.argv[2].split(",")))
bad = 0
for f in findings:
    if f.get("severity") not in ("HIGH", "CRITICAL"):
        continue
    ok = f["id"] in allowed
    bad += not ok
    print(f"    {f['severity']:8} {f['id']}: {f['finding']}{'  (allowed: private CA)' if ok else ''}")
print(f"    {'no HIGH or CRITICAL finding' if not bad else str(bad) + ' finding(s) not allowed'}")
sys.exit(1 if bad else 0)
EOF
}

# ---- 1. the node's own CA, not trusted by the scanner --------------------------------
start_node own
own_ca="$work/own/ca.pem"
tls_destination "$own_ca" '{"mode":"tls"}'
private="cert_chain_of_trust,cert_revocation"
scan own-tunnel "$tunnel_port" "$private"
scan own-api "$api_port" "$private"
scan own-cloud "$cloud" "$private"
cleanup; pids=()

# ---- 2. an operator certificate from a CA the scanner trusts -------------------------
pki="$work/pki"; mkdir -p "$pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 -subj "/CN=sg scan test CA" \
  -keyout "$pki/ca.key" -out "$pki/ca.pem" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$pki/server.key" -out "$pki/server.csr" 2>/dev/null
cat >"$pki/ext.cnf" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
crlDistributionPoints=URI:http://127.0.0.1/sg-scan-test.crl
EOF
openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
  -days 365 -extfile "$pki/ext.cnf" -out "$pki/server.pem" 2>/dev/null
cat "$pki/server.pem" "$pki/ca.pem" >"$pki/chain.pem"
start_node operator --tls-cert "$pki/chain.pem" --tls-key "$pki/server.key"
pem() { python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$1"; }
tls_destination "$pki/ca.pem" "{\"mode\":\"tls\",\"cert_pem\":$(pem "$pki/chain.pem"),\"key_pem\":$(pem "$pki/server.key")}"
scan operator-tunnel "$tunnel_port" "" --add-ca "$pki/ca.pem"
scan operator-api "$api_port" "" --add-ca "$pki/ca.pem"
scan operator-cloud "$cloud" "" --add-ca "$pki/ca.pem"

echo "==> full reports in $work"
exit "$failed"
