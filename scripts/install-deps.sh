#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages stepbox needs, only those missing:
# busybox-static (the default rootfs), a C linker for cargo, coreutils' chroot
# (the chapter 5 demo), GNU time, crun and runc (the benchmark), iproute2 (the --veth tests), strace (the kill -9
# tests), uidmap, nsenter, useradd and slirp4netns (chapter 11), Chromium and a font for the glyphs
# the book's fonts lack (tests/book.rs renders the book in it), and the container engines that
# tests/engines.rs drives chapter 12 with: podman and conmon, containerd (ctr, its runc shim),
# docker.io (dockerd: the test starts a daemon of its own; note that on a host with systemd the
# package also enables and starts docker's service, with its docker0 bridge and firewall rules,
# which the tests neither need nor use), runc and crun (runtimes to compare with). Run as root;
# `apt-get update` runs once, only if needed.
#
# With --exercises, also the host tools that the book's exercises use and a
# minimal install may lack (book/src/setup.md lists them): ping
# (iputils-ping), getfattr (attr), capsh (libcap2-bin), ps and pgrep (procps),
# ipcmk, ipcs, findmnt and flock (util-linux), python3 and wget.
set -euo pipefail
need=()
if [ "${1:-}" = --exercises ]; then
  command -v ping >/dev/null || need+=(iputils-ping)
  command -v getfattr >/dev/null || need+=(attr)
  command -v capsh >/dev/null || need+=(libcap2-bin)
  command -v pgrep >/dev/null || need+=(procps)
  command -v ipcmk >/dev/null && command -v findmnt >/dev/null && command -v flock >/dev/null || need+=(util-linux)
  command -v python3 >/dev/null || need+=(python3)
  command -v wget >/dev/null || need+=(wget)
elif [ $# -gt 0 ]; then
  echo "usage: $0 [--exercises]" >&2
  exit 2
fi
[ -x /bin/busybox ] && /bin/busybox --help >/dev/null 2>&1 && ! ldd /bin/busybox >/dev/null 2>&1 || need+=(busybox-static)
command -v cc >/dev/null || need+=(gcc libc6-dev)
command -v chroot >/dev/null || need+=(coreutils)
command -v xz >/dev/null || need+=(xz-utils)
[ -x /usr/bin/time ] || need+=(time) # GNU time: peak RSS in the benchmark
command -v ip >/dev/null || need+=(iproute2) # ip netns: the --veth tests run in a private netns
command -v strace >/dev/null || need+=(strace) # the kill -9 tests stop the runtime at an exact system call
command -v crun >/dev/null || need+=(crun) # the benchmark: chapter 12 side by side with crun and runc
command -v runc >/dev/null || need+=(runc)
command -v newuidmap >/dev/null || need+=(uidmap) # chapter 11: newuidmap, newgidmap for rootless ranges
command -v nsenter >/dev/null || need+=(util-linux) # chapter 11's kill demo
command -v useradd >/dev/null || need+=(passwd) # chapter 11's rootless tests make a user of their own
command -v slirp4netns >/dev/null || need+=(slirp4netns) # chapter 3's --network slirp4netns, for rootless containers
command -v runc >/dev/null || need+=(runc) # tests/oci.rs runs the same bundles under runc
command -v crun >/dev/null || need+=(crun) # and under crun
command -v chromium >/dev/null || need+=(chromium) # the book's width check, headless
command -v podman >/dev/null || need+=(podman) # tests/engines.rs
command -v conmon >/dev/null || need+=(conmon)
command -v containerd >/dev/null && command -v containerd-shim-runc-v2 >/dev/null || need+=(containerd)
command -v dockerd >/dev/null || need+=(docker.io)
command -v runc >/dev/null || need+=(runc)
command -v crun >/dev/null || need+=(crun)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
fi
