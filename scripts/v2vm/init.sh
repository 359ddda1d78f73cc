#!/bin/busybox sh
# /init of the cgroup-v2 test VM (busybox sh; baked into base.cpio.gz by setup.sh).
#
# run.sh adds a per-run archive with /v2vm/cmd (the command, with its env and
# cwd) and optionally /v2vm/timeout (seconds).  Serial ports, set up by run.sh:
#   ttyS0  console: kernel log + messages from this script
#   ttyS1  the command's stdout+stderr, raw (byte-exact)
#   ttyS2  "V2VM_EXIT=<status>" - written only if the command ran to the end,
#          so a missing marker means the VM itself failed.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root

# --- stage 1: move to a tmpfs ------------------------------------------------------
# pivot_root(2) fails with EINVAL while / is the initramfs rootfs (it has no
# parent mount), which breaks every container runtime.  So copy everything into
# a tmpfs and switch_root there (it deletes the old rootfs contents, then execs
# this script again as PID 1).
if [ ! -e /.v2vm-stage2 ]; then
  mount -t tmpfs -o mode=755 root /newroot
  for e in /* /.[!.]*; do
    [ -e "$e" ] && [ "$e" != /newroot ] && cp -a "$e" /newroot/
  done
  touch /newroot/.v2vm-stage2
  exec switch_root /newroot /init
fi

# --- stage 2 ---------------------------------------------------------------------
log() { echo "v2vm: $*" >/dev/console; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t mqueue mqueue /dev/mqueue
# / is already a tmpfs, so /tmp and /run need no mounts of their own (one
# would hide whatever run.sh baked in there, e.g. a cwd under /tmp)
chmod 1777 /tmp
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
# shared propagation on /, as under systemd; runtimes set their own
mount --make-rshared /

# cgroup v2 only: no v1 hierarchy is ever mounted, so every controller is free
# for the unified one.  nsdelegate as systemd mounts it.  Enable all controllers
# for the root's children.  The command then runs in the ROOT cgroup, which is
# exempt from the "no internal processes" rule: the runtime under test can
# create /sys/fs/cgroup/<anything>, enable controllers in its subtree_control and
# move processes into leaves.  (Were the command in a child cgroup with
# subtree_control set, that child could not hold processes itself.)
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
  echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control || log "cannot enable controller $c"
done

modprobe -a overlay veth bridge || log "modprobe failed"
ip link set lo up
hostname "$(cat /etc/hostname)"

OUT=/dev/ttyS1 ST=/dev/ttyS2
stty -F $OUT raw -echo   # no \n -> \r\n translation: output arrives byte-exact
stty -F $ST raw -echo

if [ -x /v2vm/cmd ]; then
  t=$(cat /v2vm/timeout 2>/dev/null)
  start=$(date +%s)
  # busybox timeout execs the command in this child (same pid), so SIGKILL hits
  # the command itself; its exit status is then 137.
  # The redirections go inside a subshell so that the shell's own notes (e.g.
  # "Killed" for a command that died from a signal) go to the console instead.
  (exec ${t:+timeout -s KILL "$t"} /v2vm/cmd </dev/null >$OUT 2>&1)
  rc=$?
  # closing the last fd of ttyS1 (above) waits until its output is sent
  if [ -n "$t" ] && [ $rc = 137 ] && [ $(($(date +%s) - start)) -ge "$t" ]; then
    echo "v2vm: command killed by the guest-side timeout (${t}s)" >$ST
  fi
else
  echo "v2vm: no /v2vm/cmd in the initramfs" >$ST
  rc=127
fi
echo "V2VM_EXIT=$rc" >$ST
log "command exited with $rc"
# with panic=-1 and qemu -no-reboot, init dying would also end the VM
poweroff -f
