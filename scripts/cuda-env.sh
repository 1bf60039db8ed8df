# shellcheck shell=bash
# Sourceable: a CUDA 13.0 toolkit from PyPI wheels, for building `--features cuda` on a machine
# with no system CUDA toolkit and no GPU (see docs/cuda.md).
#
#   source scripts/cuda-env.sh      # creates/reuses the venv, exports PATH, CUDA_* and link flags
#
# PRUNEBENCH_CUDA_VENV  venv to create/reuse (default: venv-cuda next to the repository)
# CUDA_COMPUTE_CAP      compute capability the PTX is built for (default 90: H100/H200)
#
# The versions are pinned to 13.0: the GPU machines' driver is for CUDA 13.0, and nvvm 13.5
# emits PTX 9.5 that ptxas 13.0 rejects.

_pb_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PRUNEBENCH_CUDA_VENV="${PRUNEBENCH_CUDA_VENV:-$(dirname "$_pb_repo")/venv-cuda}"
export PRUNEBENCH_CUDA_VENV

# Compiler side (candle-kernels' build script: nvcc, ptxas, headers) and the link side (cudarc
# 0.19 is built by candle with `dynamic-linking`: -lcudart -lnvrtc -lcurand -lcublas -lcublasLt).
_pb_wheels=(
  "nvidia-cuda-nvcc==13.0.*"
  "nvidia-nvvm==13.0.*"
  "nvidia-cuda-runtime==13.0.*"
  "nvidia-cuda-cccl==13.0.*"
  "nvidia-cuda-crt==13.0.*"
  "nvidia-cuda-nvrtc==13.0.*"
  "nvidia-cublas==13.0.*"
  "nvidia-curand==10.4.0.*"
)

_pb_fail() { echo "cuda-env.sh: $*" >&2; return 1; }

_pb_setup() {
  if [[ ! -x "$PRUNEBENCH_CUDA_VENV/bin/python" ]]; then
    echo "cuda-env.sh: creating venv $PRUNEBENCH_CUDA_VENV" >&2
    python3 -m venv "$PRUNEBENCH_CUDA_VENV" \
      || _pb_fail "python3 -m venv $PRUNEBENCH_CUDA_VENV failed (is python3-venv installed?)" || return 1
  fi
  # Idempotent: pip is only asked when the pinned list changed since the last success.
  local stamp="$PRUNEBENCH_CUDA_VENV/.prunebench-wheels"
  if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "${_pb_wheels[*]}" ]]; then
    echo "cuda-env.sh: pip install ${_pb_wheels[*]}" >&2
    "$PRUNEBENCH_CUDA_VENV/bin/pip" install --quiet "${_pb_wheels[@]}" \
      || _pb_fail "pip install of the CUDA wheels failed (network? see the pip output above)" || return 1
    printf '%s' "${_pb_wheels[*]}" >"$stamp"
  fi

  local cu13
  cu13="$(echo "$PRUNEBENCH_CUDA_VENV"/lib/python3*/site-packages/nvidia/cu13)"
  [[ -x "$cu13/bin/nvcc" ]] || _pb_fail "no nvcc under $cu13/bin after pip install" || return 1

  # The wheels ship only versioned sonames (libcublas.so.13); the linker wants libcublas.so.
  # libcuda.so comes with the driver only: link against a stub whose SONAME is libcuda.so.1 so
  # the real driver library is the one loaded at run time on the GPU machine.
  # Both go to $cu13/lib/stubs, a directory cudarc's build script already gives the linker
  # (it searches $CUDA_ROOT/lib/stubs), so no RUSTFLAGS are needed: changing RUSTFLAGS would
  # rebuild every crate.
  local linkdir="$cu13/lib/stubs"
  mkdir -p "$linkdir"
  local lib so
  for lib in cudart nvrtc curand cublas cublasLt; do
    so="$(find "$cu13/lib" -maxdepth 1 -name "lib$lib.so.*" | sort | head -n 1)"
    [[ -n "$so" ]] || _pb_fail "lib$lib.so.* not found in $cu13/lib" || return 1
    ln -sf "$so" "$linkdir/lib$lib.so"
  done
  "$_pb_repo/scripts/libcuda-stub.sh" "$linkdir" || _pb_fail "building the libcuda.so link stub failed" || return 1

  export CUDA_ROOT="$cu13" CUDA_PATH="$cu13" CUDA_HOME="$cu13"
  export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
  case ":$PATH:" in *":$cu13/bin:"*) ;; *) export PATH="$cu13/bin:$PATH" ;; esac
  echo "cuda-env.sh: CUDA_ROOT=$cu13 CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP ($(nvcc --version | tail -n 2 | head -n 1))" >&2
}

_pb_setup
