#!/usr/bin/env bash
# Builds stepbox and runs its most complete chapter (8: namespaces, cgroups
# and an overlayfs root made of image layers) on the default image: the
# probe reports what a process in the container sees.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "try.sh: run it as root (namespaces need it): sudo $0" >&2; exit 125; }
# Under sudo, root's PATH usually lacks the invoking user's rustup toolchain.
if ! command -v cargo >/dev/null && [ -n "${SUDO_USER:-}" ]; then
  home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
  export PATH="$home/.cargo/bin:$PATH" RUSTUP_HOME="${RUSTUP_HOME:-$home/.rustup}" CARGO_HOME="${CARGO_HOME:-$home/.cargo}"
fi
command -v cargo >/dev/null || { echo "$(basename "$0"): cargo not found: install the Rust toolchain (rustup) first" >&2; exit 125; }
scripts/install-deps.sh
cargo build --quiet --workspace --bins
mapfile -t layers < <(cargo xtask image)
args=()
for layer in "${layers[@]}"; do args+=(--layer "$layer"); done
set -x
target/debug/ch08-overlay "${args[@]}" --hostname stepbox --memory 64m --pids-limit 64 -- /bin/probe identity ns proc net fs cgroup
