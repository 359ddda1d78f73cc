#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, then runs every
# demo, error case and the book build (cargo test), and the cgroup v2 tests in
# a throwaway VM. Run as root.
#
# With arguments, runs only `cargo test ARGS` (after installing what the
# tests need), e.g. `sudo scripts/test.sh --test overlay ch08_bad_layers`:
# the way to run one test as root, since Debian's sudo hides cargo.
#
# STEPBOX_TEST_RUN (4 hex digits, random unless given) starts every container
# id the tests choose, so that the final sweep (tests/zz_leftovers.rs) checks
# this run's leftovers only, not another run's on the same host. The sweep is
# run here, after the suite, not by cargo's ordering of test binaries; with
# ARGS it is not run: `scripts/test.sh --test zz_leftovers -- --ignored`
# with the same STEPBOX_TEST_RUN runs it by hand.
set -euo pipefail
. "$(dirname "$0")/prelude.sh"
export STEPBOX_TEST_RUN="${STEPBOX_TEST_RUN:-$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')}"
if [ $# -gt 0 ]; then
  exec cargo test "$@"
fi
scripts/install-mdbook.sh
cargo build --workspace --bins --tests
status=0
cargo test --workspace --no-fail-fast || status=$?
# Also after a failed suite: what a failing test left behind is worth knowing.
echo "test.sh: the final sweep for run $STEPBOX_TEST_RUN's leftovers" >&2
cargo test --test zz_leftovers -- --ignored || status=$?
# The parent cgroups (stepbox) that every start keeps: removed when empty.
target/debug/ch08-overlay --gc >/dev/null || status=$?
exit "$status"
