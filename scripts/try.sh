#!/usr/bin/env bash
# Builds stepbox and runs its most complete chapter on the default rootfs:
# the probe reports what a process in the container sees.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "try.sh: run it as root (namespaces need it): sudo $0" >&2; exit 125; }
scripts/install-deps.sh
cargo build --quiet --workspace --bins
rootfs=$(cargo xtask rootfs)
set -x
target/debug/ch06-uts --rootfs "$rootfs" --hostname stepbox -- /bin/probe
