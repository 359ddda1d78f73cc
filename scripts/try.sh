#!/usr/bin/env bash
# Builds stepbox and runs its most complete chapter (11: namespaces, a user
# namespace among them, cgroups, an overlayfs root made of image layers,
# docker's default privileges and seccomp profile) on the default image: the
# probe reports what a process in the container sees.
set -euo pipefail
. "$(dirname "$0")/prelude.sh"
cargo build --quiet --workspace --bins
mapfile -t layers < <(cargo xtask image)
args=()
for layer in "${layers[@]}"; do args+=(--layer "$layer"); done
set -x
target/debug/ch11-userns "${args[@]}" --hostname stepbox --memory 64m --pids-limit 64 -- /bin/probe identity userns ns proc net fs cgroup caps
