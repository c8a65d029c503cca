#!/usr/bin/env bash
# Floods, bounded in count and time (release build):
#   1. 1000 silent or slow-drip peers on the tunnel port over 50 source addresses: a real
#      client's session must be up in under 1 s.
#   2. 10,000 idle sockets held on one destination's cloud port: another destination's
#      keep-alive p99 within 2x its baseline, 0 failures, and the node's descriptors back to
#      their baseline afterwards.
#   Usage: scripts/floods.sh [IDLE_SOCKETS]
set -euo pipefail
cd "$(dirname "$0")/.."
sockets=${1:-10000}
command -v cargo >/dev/null || { echo "floods: cargo is needed (https://rustup.rs)"; exit 1; }
. scripts/lib/packages.sh
need_build_tools
need_command python3 python3
install_needed "for the floods"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "==> building sg (release)"
cargo build --release -j2 --workspace --bins --quiet
echo "==> 1000 silent peers, then $sockets idle sockets"
SG_FLOOD_SOCKETS="$sockets" SG_FLOOD_STRICT=1 \
  cargo test --release -j2 -q -p sg-e2e --test floods -- --nocapture --test-threads 1 2>&1 |
  grep -E "client up|idle sockets|panicked|test result: [^o]|test result: ok. [1-9]"
