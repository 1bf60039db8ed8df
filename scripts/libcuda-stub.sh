#!/usr/bin/env bash
# Writes DIR/libcuda.so: a link-time stub of the CUDA driver library, for linking on a machine
# without an NVIDIA driver (docs/cuda.md).
#
#   scripts/libcuda-stub.sh DIR
#
# cudarc (built by candle with `dynamic-linking`) calls the driver API through extern "C"
# symbols, so the linker needs a libcuda.so that defines them. The stub defines every cu*
# function cudarc's driver bindings name (empty bodies) and has the SONAME libcuda.so.1: the
# binary records a dependency on libcuda.so.1, which on a GPU machine is the real driver
# library. The stub itself is never loaded at run time (it is not called libcuda.so.1 and its
# directory is only given to the linker).
set -euo pipefail

dir="${1:?usage: $0 DIR}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

version="$(awk '/^name = "cudarc"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$repo/Cargo.lock")"
[[ -n "$version" ]] || { echo "libcuda-stub.sh: no cudarc in Cargo.lock" >&2; exit 1; }
(cd "$repo" && cargo fetch --quiet) || { echo "libcuda-stub.sh: cargo fetch failed" >&2; exit 1; }
src="$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name "cudarc-$version" | head -n 1)"
bindings="$src/src/driver/sys/mod.rs"
[[ -f "$bindings" ]] || { echo "libcuda-stub.sh: cudarc $version driver bindings not found ($bindings)" >&2; exit 1; }

stamp="$dir/libcuda.so.cudarc-$version"
[[ -f "$dir/libcuda.so" && -f "$stamp" ]] && exit 0

mkdir -p "$dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
grep -o 'load::<_F>("cu[A-Za-z0-9_]*")' "$bindings" | sed 's/.*("\(.*\)")/void \1(void) {}/' | sort -u >"$tmp/stub.c"
n="$(wc -l <"$tmp/stub.c")"
[[ "$n" -gt 100 ]] || { echo "libcuda-stub.sh: only $n symbols found in $bindings" >&2; exit 1; }
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$dir/libcuda.so" "$tmp/stub.c" \
  || { echo "libcuda-stub.sh: cc failed" >&2; exit 1; }
rm -f "$dir"/libcuda.so.cudarc-*
touch "$stamp"
echo "libcuda-stub.sh: $dir/libcuda.so ($n symbols, SONAME libcuda.so.1, cudarc $version)" >&2
