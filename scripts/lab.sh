#!/usr/bin/env bash
# `cargo xtask lab ARGS` as root, e.g. `sudo scripts/lab.sh check 06`: the
# checks run containers, and Debian's sudo hides cargo. (`lab start` and
# `lab status` need no root: `cargo xtask lab start 06`.) Run from the
# repository, so a relative --dir is taken from there.
set -euo pipefail
. "$(dirname "$0")/prelude.sh"
exec cargo xtask lab "$@"
