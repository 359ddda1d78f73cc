#!/bin/bash
# scripts/v2vm/setup.sh - prepare the cgroup-v2 test VM used by run.sh.
#
# Idempotent: every step is skipped when its output already exists, so a
# re-run with everything in place takes well under a second.
#   1. host packages: busybox-static, qemu-system-x86, xz-utils
#   2. kernel: Debian's stock kernel (what linux-image-amd64 depends on) ->
#      $DIR/vmlinux (uncompressed) + the few modules we need, with modules.dep
#   3. base initramfs: busybox + init.sh + modules -> $DIR/base.cpio.gz
# $DIR = ${STEPBOX_V2VM_DIR:-<repo>/target/v2vm}.  Apt output goes to $DIR/setup.log.
set -euo pipefail
export LC_ALL=C DEBIAN_FRONTEND=noninteractive

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${STEPBOX_V2VM_DIR:-$(cd "$HERE/../.." && pwd)/target/v2vm}
# Modules baked into the initramfs; their dependencies (e.g. bridge -> llc stp)
# are added automatically.  Add names here if a test needs more (nf_tables, ...).
MODULES="overlay veth bridge"

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock 9                         # parallel run.sh calls may all try to set up
LOG=$DIR/setup.log

say() { printf 'v2vm setup: %-10s %s\n' "$1" "$2"; }
die() { echo "v2vm setup: ERROR: $*" >&2; exit 1; }
logged() {                      # run quietly, show the log tail on failure
  echo "+ $*" >>"$LOG"
  "$@" >>"$LOG" 2>&1 || { tail -n 25 "$LOG" >&2; die "failed: $* (full log: $LOG)"; }
}
APT_UPDATED=
apt_update() { [ -n "$APT_UPDATED" ] || logged apt-get update; APT_UPDATED=1; }
apt_install() {                 # apt_install [apt-get options...] PKG...
  apt_update
  # Never let apt "solve" a conflict by removing packages (that is what a plain
  # install of bookworm's qemu-system-x86 does to a backports qemu-utils).
  local rm
  rm=$(apt-get -s install --no-install-recommends "$@" 2>&1 | sed -n 's/^Remv \([^ ]*\).*/\1/p' | tr '\n' ' ')
  [ -z "$rm" ] || die "installing $* would remove: $rm- refusing"
  logged apt-get install -y --no-install-recommends "$@"
}

# --- 1. host packages ----------------------------------------------------------
if [ ! -x /bin/busybox ]; then
  apt_install busybox-static; say busybox "installed busybox-static"
else
  say busybox "present"
fi
# the busybox binary becomes the guest's whole userland, so it must be static
ldd /bin/busybox >/dev/null 2>&1 && die "/bin/busybox is dynamically linked; install busybox-static"

if command -v qemu-system-x86_64 >/dev/null; then
  say qemu "present ($(qemu-system-x86_64 --version | sed -n '1s/.*version \([^ ]*\).*/\1/p'))"
else
  # qemu-system-x86 must come from the same suite as an installed qemu-utils:
  # their versions must match (qemu-utils Breaks other qemu-system-common
  # versions) and apt would otherwise remove qemu-utils.  Installing both
  # together from that suite keeps (or upgrades) qemu-utils.
  qu=$(dpkg-query -W -f '${db:Status-Abbrev}${Version}' qemu-utils 2>/dev/null || true)
  APT=() suite=
  if [ "${qu:0:2}" = ii ]; then
    ver=${qu:3}
    suite_of() {                  # suite that ships qemu-utils $ver, "" if none
      apt-cache "$@" madison qemu-utils |
        awk -F' *[|] *' -v v="$ver" '$2 == v { split($3, a, " "); sub("/.*", "", a[2]); print a[2]; exit }'
    }
    apt_update
    suite=$(suite_of)
    if [ -z "$suite" ]; then
      # Installed from a suite the system sources don't list.  On the machines
      # this project runs on that is <codename>-backports: add it through a
      # private apt config (own sources.list + lists dir), system sources untouched.
      case $ver in *~bpo*) ;; *) die "qemu-utils $ver: its suite is not in the apt sources; install qemu-system-x86 $ver by hand" ;; esac
      codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
      uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' | awk -v c="$codename" '$2 == c { print $1; exit }')
      key=/usr/share/keyrings/debian-archive-keyring.gpg
      mkdir -p "$DIR/apt/lists/partial"
      echo "deb ${key:+[signed-by=$key] }${uri:-http://deb.debian.org/debian/} $codename-backports main" >"$DIR/apt/sources.list"
      APT=(-o "Dir::Etc::sourcelist=$DIR/apt/sources.list" -o "Dir::State::lists=$DIR/apt/lists")
      logged apt-get "${APT[@]}" update
      suite=$(suite_of "${APT[@]}")
      suite=${suite:-$codename-backports}  # backports moved on: upgrade qemu-utils with it
    fi
    apt_install "${APT[@]}" -t "$suite" qemu-system-x86 qemu-utils
  else
    apt_install qemu-system-x86
  fi
  say qemu "installed qemu-system-x86 ${suite:+from $suite }($(qemu-system-x86_64 --version | sed -n '1s/.*version \([^ ]*\).*/\1/p'))"
fi

if command -v xz >/dev/null; then say xz "present"; else apt_install xz-utils; say xz "installed xz-utils"; fi

# --- 2. kernel -------------------------------------------------------------------
if [ -s "$DIR/vmlinux" ] && [ "$(sed -n 2p "$DIR/kernel.stamp" 2>/dev/null)" = "$MODULES" ]; then
  say kernel "present ($(head -1 "$DIR/kernel.stamp"))"
else
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  [ -n "$pkg" ] || { apt_update; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'); }
  [ -n "$pkg" ] || die "cannot find the package linux-image-amd64 depends on"
  K=$DIR/kernel.tmp
  rm -rf "$K"; mkdir -p "$K/x"
  (cd "$K" && logged apt-get -o APT::Sandbox::User=root download "$pkg")
  dpkg-deb -x "$K"/*.deb "$K/x"             # ~400 MB unpacked, deleted below
  kver=$(ls "$K/x/lib/modules")
  # Boot the uncompressed ELF vmlinux: qemu enters it through the PVH note and
  # skips the in-guest xz decompression of bzImage, which costs ~3.5 s under TCG.
  # vmlinuz = setup code + decompressor + xz stream; cut the stream out.
  z=$K/x/boot/vmlinuz-$kver
  for off in $(grep -abo $'\xfd7zXZ' "$z" | cut -d: -f1 | head -5); do
    tail -c +$((off + 1)) "$z" | xz -dc --single-stream >"$K/vmlinux" 2>/dev/null || true
    [ "$(head -c 4 "$K/vmlinux")" = $'\x7fELF' ] && break
  done
  [ "$(head -c 4 "$K/vmlinux")" = $'\x7fELF' ] || die "could not extract vmlinux from $z"

  # Copy the wanted modules + their deps (from the "depends=" field of each
  # .ko's .modinfo).  The .deb ships no modules.dep (depmod runs in postinst),
  # so generate one with busybox depmod for the guest's busybox modprobe.
  MSRC=$K/x/lib/modules/$kver
  MDST=$K/modules/lib/modules/$kver
  declare -A seen=()
  add_mod() {
    local m=$1 f rel deps d
    [ -z "${seen[$m]:-}" ] || return 0
    seen[$m]=1
    f=$(find "$MSRC/kernel" \( -name "$m.ko*" -o -name "${m//_/-}.ko*" \) | head -1)
    if [ -z "$f" ]; then
      grep -qE "/(${m}|${m//_/-})\.ko" "$MSRC/modules.builtin" && return 0
      die "kernel module $m not found in $pkg"
    fi
    rel=${f#"$MSRC"/}; rel=${rel%.xz}
    mkdir -p "$(dirname "$MDST/$rel")"
    # newer Debian kernels ship .ko.xz; busybox modprobe wants plain .ko
    case $f in *.xz) xz -dc "$f" >"$MDST/$rel" ;; *) cp "$f" "$MDST/$rel" ;; esac
    deps=$(tr '\0' '\n' <"$MDST/$rel" | sed -n 's/^depends=//p' | head -1)
    for d in ${deps//,/ }; do add_mod "$d"; done
  }
  for m in $MODULES; do add_mod "$m"; done
  cp "$MSRC/modules.builtin" "$MSRC/modules.order" "$MDST/"
  busybox depmod -b "$K/modules" "$kver"

  rm -rf "$DIR/modules"
  mv "$K/modules" "$DIR/modules"
  mv "$K/vmlinux" "$DIR/vmlinux"
  printf '%s\n%s\n' "$kver" "$MODULES" >"$DIR/kernel.stamp"
  rm -rf "$K"
  say kernel "$kver: vmlinux + $(find "$DIR/modules" -name '*.ko' | wc -l) modules ($(cd "$DIR/modules" && find . -name '*.ko' -printf '%f ' | sed 's/\.ko//g'))"
fi

# --- 3. base initramfs -----------------------------------------------------------
BASE=$DIR/base.cpio.gz
if [ -s "$BASE" ] && [ "$BASE" -nt "$HERE/init.sh" ] && [ "$BASE" -nt "$HERE/setup.sh" ] \
   && [ "$BASE" -nt "$DIR/kernel.stamp" ]; then
  say initramfs "present"
else
  S=$DIR/base.tmp
  rm -rf "$S"
  mkdir -p "$S"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,etc,newroot}
  cp /bin/busybox "$S/bin/busybox"
  # applet links are made here rather than by `busybox --install` at boot
  for a in $(/bin/busybox --list-full); do
    [ "$a" = linuxrc ] || [ -e "$S/$a" ] || ln -s /bin/busybox "$S/$a"
  done
  # The kernel opens /dev/console before running /init and does not mount
  # devtmpfs for an initramfs, so the node must be in the archive.
  mknod -m 600 "$S/dev/console" c 5 1
  mknod -m 666 "$S/dev/null" c 1 3
  echo 'root:x:0:0:root:/root:/bin/sh' >"$S/etc/passwd"
  echo 'root:x:0:' >"$S/etc/group"
  echo 'v2vm' >"$S/etc/hostname"
  printf '127.0.0.1 localhost v2vm\n::1 localhost\n' >"$S/etc/hosts"
  ln -s /proc/self/mounts "$S/etc/mtab"
  cp -a "$DIR/modules/lib" "$S/"
  install -m 755 "$HERE/init.sh" "$S/init"
  # busybox cpio, not GNU cpio (not installed by default).  No --ignore-devno:
  # it also zeroes rdev, turning /dev/console into 0:0.
  (cd "$S" && find . -mindepth 1 | sort | busybox cpio -o -H newc -R 0:0 --renumber-inodes 2>/dev/null) |
    gzip -9 >"$BASE.tmp"
  # run.sh appends an uncompressed cpio; the kernel only looks for a cpio
  # header at 4-byte aligned offsets (and skips zero padding).
  size=$(stat -c %s "$BASE.tmp")
  head -c $(( (4 - size % 4) % 4 )) /dev/zero >>"$BASE.tmp"
  mv "$BASE.tmp" "$BASE"
  rm -rf "$S"
  say initramfs "$BASE ($(du -k "$BASE" | cut -f1) KiB)"
fi
