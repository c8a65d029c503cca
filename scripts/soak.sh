#!/usr/bin/env bash
# Soak: streams through one gateway without pause (about 1 M in 10 minutes here) while its
# client is killed and restarted every 20 s; the node's RSS and open descriptors are sampled
# every 10 s into target/test-artifacts/soak.tsv and soak.svg. Passes when the
# descriptors are back to baseline (±10) and, for runs of 30 minutes or more, the RSS slope
# after the first minute is under 1 %/h. Bounded by --minutes (default 10).
#   Usage: scripts/soak.sh [--minutes N]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=10
[ "${1:-}" = "--minutes" ] && minutes=${2:?--minutes needs a number}
command -v cargo >/dev/null || { echo "soak: cargo is needed (https://rustup.rs)"; exit 1; }
. scripts/lib/packages.sh
need_build_tools
install_needed "to build sg"
echo "==> building sg (release)"
cargo build --release -j2 --workspace --bins --quiet
echo "==> soaking for $minutes minute(s)"
SG_SOAK_MINUTES="$minutes" cargo test --release -j2 -q -p sg-e2e --test soak -- --nocapture 2>&1 |
  grep -vE "^running|^$|^test result: ok. 0"
echo "==> table and plot: target/test-artifacts/soak.tsv, soak.svg"
