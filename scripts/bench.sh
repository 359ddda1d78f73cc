#!/usr/bin/env bash
# The benchmark (book/src/benchmark.md): a release build of every chapter,
# each timed side by side with the floor (unshare + chroot). Installs what it
# needs (GNU time for peak RSS, crun and runc for chapter 12's comparison,
# strace for its breakdown), then passes its arguments to `cargo xtask
# bench` (e.g. --runs 20 --write bench/results.md; --only oci for chapter
# 12's section alone). Run as root: sudo works,
# even though Debian's sudo resets PATH (prelude.sh finds the user's cargo).
set -euo pipefail
. "$(dirname "$0")/prelude.sh"
exec cargo xtask bench "$@"
