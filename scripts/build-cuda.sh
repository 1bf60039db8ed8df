#!/usr/bin/env bash
# Build prunebench with `--features cuda` on a machine without a CUDA toolkit (docs/cuda.md).
#
#   scripts/build-cuda.sh               # cargo build --release --features cuda -p bench-cli
#   scripts/build-cuda.sh --check-only  # cargo check of bench-cli and xtask with cuda (still compiles the PTX)
#   scripts/build-cuda.sh --dev         # cargo build --features cuda -p bench-cli (dev profile)
#
# Defaults to its own target dir (target-cuda) so CPU builds in target/ are not invalidated.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode=release
case "${1:-}" in
  "") ;;
  --check-only) mode=check ;;
  --dev) mode=dev ;;
  *) echo "usage: $0 [--check-only|--dev]" >&2; exit 2 ;;
esac

# shellcheck source=scripts/cuda-env.sh
source "$repo/scripts/cuda-env.sh" || { echo "build-cuda.sh: setting up the CUDA environment failed" >&2; exit 1; }

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target-cuda}"
cd "$repo"
case "$mode" in
  check) cmd=(cargo check --locked --features bench-cli/cuda,xtask/cuda -p bench-cli -p xtask) ;;
  dev) cmd=(cargo build --features cuda -p bench-cli) ;;
  release) cmd=(cargo build --release --features cuda -p bench-cli) ;;
esac
echo "build-cuda.sh: ${cmd[*]} (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)" >&2
start=$SECONDS
if ! "${cmd[@]}"; then
  echo "build-cuda.sh: '${cmd[*]}' failed after $((SECONDS - start)) s" >&2
  exit 1
fi
echo "build-cuda.sh: '${cmd[*]}' succeeded in $((SECONDS - start)) s" >&2
