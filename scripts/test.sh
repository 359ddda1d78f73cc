#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, then runs every
# demo, error case and the book build (cargo test), and the cgroup v2 tests in
# a throwaway VM. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run it as root (the demos create namespaces): sudo $0" >&2; exit 125; }
# Under sudo, root's PATH usually lacks the invoking user's rustup toolchain.
if ! command -v cargo >/dev/null && [ -n "${SUDO_USER:-}" ]; then
  home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
  export PATH="$home/.cargo/bin:$PATH" RUSTUP_HOME="${RUSTUP_HOME:-$home/.rustup}" CARGO_HOME="${CARGO_HOME:-$home/.cargo}"
fi
command -v cargo >/dev/null || { echo "$(basename "$0"): cargo not found: install the Rust toolchain (rustup) first" >&2; exit 125; }
scripts/install-deps.sh
scripts/install-mdbook.sh
cargo build --workspace --bins --tests
cargo test --workspace --no-fail-fast
