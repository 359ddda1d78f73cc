#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, then runs every
# demo, error case and the book build (cargo test), and the cgroup v2 tests in
# a throwaway VM. Run as root.
#
# With arguments, runs only `cargo test ARGS` (after installing what the
# tests need), e.g. `sudo scripts/test.sh --test overlay ch08_bad_layers`:
# the way to run one test as root, since Debian's sudo hides cargo.
set -euo pipefail
. "$(dirname "$0")/prelude.sh"
if [ $# -gt 0 ]; then
  exec cargo test "$@"
fi
scripts/install-mdbook.sh
cargo build --workspace --bins --tests
cargo test --workspace --no-fail-fast
