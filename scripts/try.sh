#!/usr/bin/env bash
# Builds stepbox and runs its most complete chapter (12: an OCI runtime, with
# every earlier chapter's feature driven by a bundle's config.json) on the
# default image: `ch12-oci spec` writes the config.json that chapter 11's
# flags mean (new namespaces, a user namespace among them, cgroup limits,
# docker's default privileges and seccomp profile), `ch12-oci run` runs it,
# and the probe reports what a process in the container sees.
set -euo pipefail
. "$(dirname "$0")/prelude.sh"
cargo build --quiet --workspace --bins
rootfs=$(cargo xtask rootfs)
bundle=$(mktemp -d /tmp/stepbox-try.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
# The container's root is uid 100000 on the host (--uidmap below): it must
# be able to reach its rootfs, which a clone in /root (mode 700) is not.
chmod 711 "$bundle"
cp -a "$rootfs" "$bundle/rootfs"
# The probe says "own" or "host" for each namespace when it knows the
# host's; a config.json carries only the environment it is given.
host_ns=$(for n in cgroup ipc mnt net pid time user uts; do printf '%s:%s ' "$n" "$(stat -L -c %i /proc/self/ns/$n)"; done)
set -x
target/debug/ch12-oci spec --bundle "$bundle" --rootfs "$bundle/rootfs" --read-only \
  --hostname stepbox --memory 64m --pids-limit 64 --uidmap 0:100000:65536 \
  -e STEPBOX_HOST_NS="${host_ns% }" -e STEPBOX_HOST_ROOT="$(stat -c %d:%i /)" \
  -- /bin/probe identity userns ns proc net fs cgroup caps
target/debug/ch12-oci run --bundle "$bundle" "try-$$"
