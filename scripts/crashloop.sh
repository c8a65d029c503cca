#!/usr/bin/env bash
# Crash loop: kill -9 of a node at a random moment while configuration writes stream in,
# 200 cycles by default (one in ten also killed during start-up). After each restart every
# acknowledged change must be there, the write in flight wholly or not at all, the cloud
# ports unchanged, and the node must start. The suite runs the same loop with 20 cycles.
# Bounded: each cycle is at most 10 s of writes plus a restart (the harness gives a start
# 20 s); about 1 s per cycle here.
#   Usage: scripts/crashloop.sh [CYCLES]
set -euo pipefail
cd "$(dirname "$0")/.."
cycles=${1:-200}
command -v cargo >/dev/null || { echo "crashloop: cargo is needed (https://rustup.rs)"; exit 1; }
. scripts/lib/packages.sh
need_build_tools
install_needed "to build sg"
echo "==> building sg"
cargo build -j2 --workspace --bins --quiet
echo "==> $cycles cycles"
SG_CRASHLOOP_CYCLES="$cycles" cargo test -j2 -q -p sg-e2e --test crashloop -- --nocapture 2>&1 |
  grep -E "crash loop|panicked|cycle|test result"
