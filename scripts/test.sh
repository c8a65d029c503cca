#!/usr/bin/env bash
# The test command: installs what the tests need when it is missing, builds the binaries
# the end-to-end tests start, and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "test.sh: cargo is needed (the Rust toolchain, https://rustup.rs)"; exit 1; }

# Debian packages the end-to-end tests use: a real Redis server and client, openssl
# (s_client and s_server as real TLS peers), and Chromium for the web UI test.
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  sudo_=""; [ "$(id -u)" -ne 0 ] && sudo_="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_ apt-get update -qq
  $sudo_ apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# playwright-core drives Chromium in the web UI test (pinned in tests/ui/package-lock.json).
if [ ! -d tests/ui/node_modules/playwright-core ]; then
  echo "==> installing playwright-core"
  (cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "==> building"
cargo build -j2 --workspace --bins
echo "==> testing"
cargo test -j2 --workspace
