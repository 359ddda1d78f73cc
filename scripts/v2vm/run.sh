#!/bin/bash
# scripts/v2vm/run.sh - run a command as root in a throw-away qemu VM whose
# kernel (Debian's stock one) uses the unified cgroup v2 hierarchy.
#
# Usage: run.sh [-f SRC[:DST]]... [-e VAR=VAL]... [-C DIR] [-t SECS] [-m MB] [-s] -- COMMAND [ARGS...]
#   -f SRC[:DST]  bake file or directory SRC (recursively, modes and symlinks kept,
#                 owned by root) into the guest at DST; default DST = SRC's absolute
#                 host path; a relative DST is relative to the guest cwd.  Shared
#                 libraries of dynamically linked ELF executables are added too.
#   -e VAR=VAL    set an environment variable for COMMAND
#   -C DIR        guest working directory (default: the host's current directory)
#   -t SECS       guest-side timeout for COMMAND (default 900; it is then killed: 137)
#   -m MB         guest memory (default 512)
#   -s            run COMMAND as a systemd login would: in the session scope
#                 /sys/fs/cgroup/user.slice/user-0.slice/session-1.scope, a
#                 non-root cgroup that also holds another (long-lived) process
# COMMAND runs with its argv as given (no shell), stdin /dev/null, in the root
# cgroup (or with -s the session scope), all controllers enabled for the root's
# children.  Its stdout+stderr (merged)
# stream to our stdout.  Exit status: COMMAND's; 125 if the VM itself failed
# (no status from the guest: boot failure, kernel panic, qemu error, host-side
# timeout at SECS+120) - the console tail is printed on stderr - or on bad usage.
# Env: STEPBOX_V2VM_DIR (cache, default <repo>/target/v2vm; setup.sh is run if
# it is incomplete), V2VM_ACCEL=auto|kvm|tcg, V2VM_CONSOLE=FILE (keep the
# console log).  Parallel runs are independent (own temp dir, read-only cache).
set -uo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${STEPBOX_V2VM_DIR:-$(cd "$HERE/../.." && pwd)/target/v2vm}
export STEPBOX_V2VM_DIR=$DIR

die() { echo "v2vm run: $*" >&2; exit 125; }
usage() { sed -n '2,/^set /{/^set /d; s/^# \{0,1\}//; p}' "$0" >&2; exit 125; }

FILES=() ENVS=() CWD=$PWD TMO=900 MEM=512 SESSION=
while getopts ':f:e:C:t:m:sh' o; do
  case $o in
    f) FILES+=("$OPTARG") ;;
    e) [[ $OPTARG =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "-e $OPTARG: expected VAR=VALUE"
       ENVS+=("$OPTARG") ;;
    C) CWD=$OPTARG ;;
    t) [[ $OPTARG =~ ^[1-9][0-9]*$ ]] || die "-t: seconds expected"; TMO=$OPTARG ;;
    m) [[ $OPTARG =~ ^[1-9][0-9]*$ ]] || die "-m: MB expected"; MEM=$OPTARG ;;
    s) SESSION=1 ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || usage
[[ $CWD == /* ]] || die "-C needs an absolute path"

# Also when init.sh or setup.sh changed since the cached initramfs was made
# (a pull that changes the guest's init must not run the old one).
if [ ! -s "$DIR/vmlinux" ] || [ ! -s "$DIR/base.cpio.gz" ] || ! command -v qemu-system-x86_64 >/dev/null \
   || [ "$HERE/init.sh" -nt "$DIR/base.cpio.gz" ] || [ "$HERE/setup.sh" -nt "$DIR/base.cpio.gz" ]; then
  "$HERE/setup.sh" >&2 || die "setup.sh failed"
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/v2vm-run.XXXXXX") || die "mktemp failed"
QPID='' TPID=''
cleanup() {
  [ -z "$QPID" ] || kill "$QPID" 2>/dev/null
  [ -z "$TPID" ] || kill "$TPID" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

q() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }   # quote for sh

# --- per-run archive: /v2vm/cmd + the -f files ---------------------------------------
R=$W/root
mkdir -p "$R/v2vm" "$R$CWD"
for f in "${FILES[@]+"${FILES[@]}"}"; do
  src=${f%%:*} dst=${f#*:}
  [ "$dst" != "$f" ] || dst=$(realpath -s "$src")
  [[ $dst == /* ]] || dst=$CWD/$dst
  [ -e "$src" ] || die "-f $src: no such file or directory"
  case $dst/ in /proc/*|/sys/*|/dev/*) die "-f $f: the guest mounts over $dst" ;; esac
  mkdir -p "$(dirname "$R$dst")"
  # -a keeps modes and symlinks inside directories, -H follows SRC itself if it
  # is a symlink, -T merges directories given twice (or into /usr, ...)
  cp -a -H -T "$src" "$R$dst" || die "copying $src failed"
done
# glibc libraries (and the ELF interpreter) of dynamically linked executables,
# at the host paths ldd reports; the guest's ld.so finds them in its default dirs.
find "$R" -type f -perm /111 -print0 | while IFS= read -r -d '' b; do
  IFS= read -r -n 4 magic <"$b" 2>/dev/null; [ "$magic" = $'\x7fELF' ] || continue
  ldd "$b" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p'
done | sort -u | while read -r lib; do
  [ -e "$R$lib" ] || { mkdir -p "$(dirname "$R$lib")" && cp -L "$lib" "$R$lib"; }
done
{
  echo '#!/bin/sh'
  for e in "${ENVS[@]+"${ENVS[@]}"}"; do echo "export ${e%%=*}=$(q "${e#*=}")"; done
  echo "cd $(q "$CWD") || exit 126"
  printf 'exec'; for a in "$@"; do printf ' %s' "$(q "$a")"; done; echo
} >"$R/v2vm/cmd"
chmod 755 "$R/v2vm/cmd"
echo "$TMO" >"$R/v2vm/timeout"
[ -z "$SESSION" ] || : >"$R/v2vm/session"
# Uncompressed: gunzip inside a TCG guest is slow, and the kernel accepts
# concatenated archives (base.cpio.gz is padded to a 4-byte boundary).
# --renumber-inodes: host inode numbers could collide with the base archive's,
# which the kernel would take for hard links.
(cd "$R" && find . -mindepth 1 | busybox cpio -o -H newc -R 0:0 --renumber-inodes 2>/dev/null) \
  >"$W/run.cpio" || die "cpio failed"
cat "$DIR/base.cpio.gz" "$W/run.cpio" >"$W/initrd" || die "writing initrd failed"
rm -rf "$R" "$W/run.cpio"

# --- boot ----------------------------------------------------------------------
accel=${V2VM_ACCEL:-auto}
if [ "$accel" = auto ]; then
  # /dev/kvm can be a PVM variant (kvm_pvm) that only runs PVM guest kernels
  # and fails on Debian's; real KVM needs vmx/svm.
  if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo && [ ! -d /sys/module/kvm_pvm ]; then
    accel=kvm; else accel=tcg; fi
fi
case $accel in
  kvm) ACC=(-accel kvm -cpu host) ;;
  tcg) ACC=(-accel tcg -cpu max) ;;
  *) die "V2VM_ACCEL=$accel: expected auto, kvm or tcg" ;;
esac
: >"$W/out"
# -nodefaults: no NIC (no iPXE ROM), no VGA; the three -serial are ttyS0..2.
# panic=-1 + -no-reboot: a kernel panic (or init dying) ends qemu at once.
timeout -k 5 $((TMO + 120)) qemu-system-x86_64 "${ACC[@]}" -smp 2 -m "$MEM" \
  -nodefaults -no-user-config -display none -no-reboot \
  -kernel "$DIR/vmlinux" -initrd "$W/initrd" -append "console=ttyS0 quiet panic=-1" \
  -serial "file:$W/console" -serial "file:$W/out" -serial "file:$W/status" \
  </dev/null >"$W/qemu.log" 2>&1 &
QPID=$!
tail -c +1 -s 0.1 -f --pid=$QPID "$W/out" &   # stream the output while it runs
TPID=$!
wait $QPID 2>/dev/null; qrc=$?; QPID=   # 2>/dev/null: no bash note if qemu aborts
wait $TPID; TPID=
[ -z "${V2VM_CONSOLE:-}" ] || cp "$W/console" "$V2VM_CONSOLE"

grep -av '^V2VM_EXIT=' "$W/status" >&2            # e.g. the guest timeout note
rc=$(sed -n 's/^V2VM_EXIT=\([0-9]*\).*/\1/p' "$W/status" | tail -1)
if [ -z "$rc" ]; then
  [ $qrc = 124 ] && why="host-side timeout after $((TMO + 120))s" || why="qemu exit status $qrc"
  {
    echo "v2vm run: the VM failed ($why, no exit status from the guest)"
    [ ! -s "$W/qemu.log" ] || { echo "--- qemu:"; tail -n 20 "$W/qemu.log"; }
    echo "--- console tail:"; tail -n 40 "$W/console"
  } >&2
  exit 125
fi
exit "$rc"
