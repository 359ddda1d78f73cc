#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, then runs every
# demo, error case and the book build (cargo test), and the cgroup v2 tests in
# a throwaway VM. Run as root.
set -euo pipefail
. "$(dirname "$0")/prelude.sh"
scripts/install-mdbook.sh
cargo build --workspace --bins --tests
cargo test --workspace --no-fail-fast
