#!/usr/bin/env bash
# Builds every fuzz target and runs each one for a short while (FUZZ_SECONDS, default
# 20) with the Bot API dictionary, one after another. A crash fails the run and leaves
# its input under fuzz/artifacts/TARGET/. Needs a nightly toolchain: without one it says
# so and skips. The seed corpus is built first when the shared update samples exist.
#
#   FUZZ_SECONDS=900 FUZZ_LOG_DIR=/tmp/fuzzlogs bash .ci/fuzz.sh   # the long runs
#   FUZZ_TARGETS="update_parse template" bash .ci/fuzz.sh           # a subset
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${FUZZ_SECONDS:-20}"
log_dir="${FUZZ_LOG_DIR:-}"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz: no nightly toolchain (rustup toolchain install nightly); skipping the fuzz targets"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi

targets="${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}"

if [ -d ../shared/data/updates ] || [ -n "${EDGEBOT_SHARED_DATA:-}" ]; then
    bash fuzz/seed.sh
fi

echo "fuzz: building every target"
cargo +nightly fuzz build

# The webhook target opens a store per process: keep its file in memory when possible.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export TMPDIR="${TMPDIR:-/dev/shm}"
fi

for target in $targets; do
    echo "fuzz: $target for ${seconds}s"
    mkdir -p "fuzz/corpus/$target"
    run=(cargo +nightly fuzz run "$target" "fuzz/corpus/$target" --
        -max_total_time="$seconds" -timeout=60 -dict=fuzz/bot_api.dict -print_final_stats=1)
    # One fuzzer process at a time (no -jobs/-fork): CI machines are shared.
    if [ -n "$log_dir" ]; then
        mkdir -p "$log_dir"
        status=0
        "${run[@]}" >"$log_dir/$target.log" 2>&1 || status=$?
        tail -n 25 "$log_dir/$target.log"
        [ "$status" -eq 0 ] || exit "$status"
    else
        "${run[@]}"
    fi
done
echo "fuzz: every target ran ${seconds}s without a finding"
