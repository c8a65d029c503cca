#!/usr/bin/env bash
# The test command: installs what the tests need when it is missing, builds the binaries
# the end-to-end tests start, and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the end-to-end tests use: a real Redis server and client, and openssl's
# s_client as a real TLS client for cloud ports.
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  sudo_=""; [ "$(id -u)" -ne 0 ] && sudo_="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_ apt-get update -qq
  $sudo_ apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "==> building"
cargo build -j2 --workspace --bins
echo "==> testing"
cargo test -j2 --workspace
