#!/usr/bin/env bash
# The test command: installs what the tests need when it is missing, builds the binaries
# the end-to-end tests start, and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "test.sh: cargo is needed (the Rust toolchain, https://rustup.rs)"; exit 1; }

# Debian packages the build and the end-to-end tests use: protoc (see packages.sh), a real
# etcd (3 members on loopback) with etcdctl, nftables (partitions), iproute2 (a network
# namespace as a second client host), systemd-analyze (the service units), a real Redis
# server and client, openssl (s_client and s_server as real TLS peers), nginx (a PROXY
# protocol server), tinyproxy and Dante (the client's egress proxies), Chromium for the web
# UI, and pip for the OpenAPI validator.
. scripts/lib/packages.sh
need_build_tools
need_command etcd etcd-server
need_command etcdctl etcd-client
need_command nft nftables
need_command ip iproute2
need_command systemd-analyze systemd
need_command redis-server redis-server
need_command redis-cli redis-tools
need_command openssl openssl
need_command curl curl
need_file /usr/sbin/nginx nginx
need_command tinyproxy tinyproxy
need_file /usr/sbin/danted dante-server
need_command python3 python3
need_command pip3 python3-pip
need_command chromium chromium
need_command node nodejs
need_command npm npm
install_needed "for building and testing"

# playwright-core drives Chromium in the web UI test (pinned in tests/ui/package-lock.json).
if [ ! -d tests/ui/node_modules/playwright-core ]; then
  echo "==> installing playwright-core"
  (cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)
fi

# openapi-spec-validator (PyPI) checks docs/openapi.json in tests/e2e/openapi.rs.
if ! python3 -c "import openapi_spec_validator" 2>/dev/null; then
  echo "==> installing openapi-spec-validator"
  python3 -m pip install --quiet openapi-spec-validator ||
    python3 -m pip install --quiet --break-system-packages openapi-spec-validator
fi

echo "==> building"
cargo build -j2 --workspace --bins
echo "==> testing"
cargo test -j2 --workspace
