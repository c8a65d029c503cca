#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets) for a number of executions each
# (default 10 M), on nightly, then merges what grew coverage into the committed corpus
# (fuzz/corpus/TARGET), which `cargo test` replays on stable. A crash stops with the input
# in fuzz/artifacts/TARGET: fix it, then copy the input into fuzz/corpus/TARGET.
# Bounded: each target stops after --runs executions or --max-seconds (default 1800).
#   Usage: scripts/fuzz.sh [--runs N] [--max-seconds S] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=10000000; max_seconds=1800; targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --max-seconds) max_seconds=$2; shift 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
rustup toolchain list | grep -q nightly || { echo "fuzz: the nightly toolchain is needed (rustup toolchain install nightly)"; exit 1; }
. scripts/lib/packages.sh
need_build_tools
install_needed "to build sg"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cd fuzz
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
echo "==> building the targets"
cargo +nightly fuzz build -O -s none
for t in "${targets[@]}"; do
  work="target/corpus-work/$t"; mkdir -p "$work" "corpus/$t"
  echo "==> $t: $runs runs (at most ${max_seconds}s)"
  cargo +nightly fuzz run -O -s none "$t" "$work" "corpus/$t" -- \
    -runs="$runs" -max_total_time="$max_seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 2>"target/$t.log" || { tail -40 "target/$t.log"; exit 1; }
  grep -E "^stat::number_of_executed_units|^Done" "target/$t.log" | sed "s/^/    /"
  # Keep the committed corpus small: what adds coverage, minimized.
  cargo +nightly fuzz run -O -s none "$t" "corpus/$t" "$work" -- -merge=1 2>/dev/null >/dev/null || true
  cargo +nightly fuzz cmin -O -s none "$t" "corpus/$t" 2>/dev/null >/dev/null || true
  echo "    corpus/$t: $(ls "corpus/$t" | wc -l) inputs, $(du -sh "corpus/$t" | cut -f1)"
done
