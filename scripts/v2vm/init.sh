#!/bin/busybox sh
# /init of the cgroup-v2 test VM (busybox sh; baked into base.cpio.gz by setup.sh).
#
# run.sh adds a per-run archive with /v2vm/cmd (the command, with its env and
# cwd) and optionally /v2vm/timeout (seconds) and /v2vm/session (run.sh -s).  Serial ports, set up by run.sh:
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
# exempt from the "no internal processes" rule, unless run.sh -s puts it in a
# session scope (below), where a runtime must not create its cgroups under its
# own (a cgroup with subtree_control set cannot hold processes itself).
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
  echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control || log "cannot enable controller $c"
done

# run.sh -s: put the command where a systemd login puts a shell, in a session
# scope: a cgroup other than the root that holds processes (here also a
# long-lived sleep, as a login's other processes).  As systemd does, the
# controllers are enabled down to the user's slice, not in the scope: the
# no-internal-process rule forbids a cgroup both (the scope holds processes).
SCOPE=
if [ -e /v2vm/session ]; then
  SCOPE=/sys/fs/cgroup/user.slice/user-0.slice/session-1.scope
  mkdir -p $SCOPE
  for d in /sys/fs/cgroup/user.slice /sys/fs/cgroup/user.slice/user-0.slice; do
    for c in $(cat $d/cgroup.controllers); do
      echo "+$c" >$d/cgroup.subtree_control || log "cannot enable controller $c in $d"
    done
  done
  sleep 2147483647 </dev/null >/dev/null 2>&1 &
  echo $! >$SCOPE/cgroup.procs || log "cannot move the sleep into $SCOPE"
fi

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
  # With -s this subshell moves itself into the scope first ("0": the writer).
  (
    [ -z "$SCOPE" ] || echo 0 >$SCOPE/cgroup.procs || { log "cannot enter $SCOPE"; exit 125; }
    exec ${t:+timeout -s KILL "$t"} /v2vm/cmd </dev/null >$OUT 2>&1
  )
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
