#!/usr/bin/env bash
# One chapter's demo, live, for an audience: `sudo scripts/demo.sh 05`
# runs `cargo xtask demo 05` (book/src/demos.md), `scripts/demo.sh list`
# lists them. Only finds cargo under sudo, as prelude.sh does; installs
# nothing: a demo needs the built project and root, no more.
set -euo pipefail
cd "$(dirname "$0")/.."
# Under sudo, root's PATH usually lacks the invoking user's rustup toolchain.
if ! command -v cargo >/dev/null && [ -n "${SUDO_USER:-}" ]; then
  home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
  export PATH="$home/.cargo/bin:$PATH" RUSTUP_HOME="${RUSTUP_HOME:-$home/.rustup}" CARGO_HOME="${CARGO_HOME:-$home/.cargo}"
fi
command -v cargo >/dev/null || { echo "demo.sh: cargo not found: install the Rust toolchain (rustup) first" >&2; exit 1; }
exec cargo xtask demo "$@"
