#!/usr/bin/env bash
# vm.sh: run a shell script inside a two-node Linux guest and report what it
# printed and how it exited.
#
#   vm.sh [-f HOSTFILE]... [-t SECONDS] GUEST_SCRIPT [ARGS...]
#
# The guest is Debian's own kernel (/boot/vmlinuz-*, linux-image-amd64)
# under QEMU's software emulation (TCG; KVM is not used) with two NUMA
# nodes of 512 MiB and one CPU each: CPU 0 on node 0, CPU 1 on node 1. Its
# root file system is an initramfs built here: busybox-static, every
# HOSTFILE (copied to /t/<name>) with the dynamic loader and the shared
# libraries ldd finds for it (at their host paths), and GUEST_SCRIPT run by
# busybox sh in /t with ARGS. The guest's output comes back over the serial
# console; this script exits with the guest script's status.
#
# Exit 77 (ctest's SKIP_RETURN_CODE) with a line starting SKIP when QEMU,
# a kernel or busybox-static is missing or QEMU cannot start; 1 when the
# guest booted but its script did not finish (timeout, panic).
#
# Environment: NUMA_VM_TIMEOUT (seconds, default 900; -t overrides),
# NUMA_VM_KEEP=1 keeps the work directory, NUMA_VM_QEMU, NUMA_VM_KERNEL.
set -u

files=()
timeout_s=${NUMA_VM_TIMEOUT:-900}
while [ $# -gt 0 ]; do
  case "$1" in
    -f) files+=("$2"); shift 2 ;;
    -t) timeout_s=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "vm.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "usage: vm.sh [-f FILE]... [-t SECONDS] GUEST_SCRIPT [ARGS...]" >&2; exit 2; }
script=$1; shift

skip() { echo "SKIP: $*"; exit 77; }

qemu=${NUMA_VM_QEMU:-$(command -v qemu-system-x86_64 || true)}
[ -n "$qemu" ] && [ -x "$qemu" ] || skip "qemu-system-x86_64 not found (Debian package qemu-system-x86)"
kernel=${NUMA_VM_KERNEL:-$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)}
[ -n "$kernel" ] && [ -r "$kernel" ] || skip "no readable kernel /boot/vmlinuz-* (Debian package linux-image-amd64)"
busybox=""
for b in /bin/busybox /usr/bin/busybox; do
  if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then busybox=$b; break; fi
done
[ -n "$busybox" ] || skip "no statically linked busybox (Debian package busybox-static)"
[ "$(uname -m)" = x86_64 ] || skip "host is not x86_64"
command -v cpio >/dev/null || skip "cpio not found"

work=$(mktemp -d "${TMPDIR:-/tmp}/lz-numa-vm.XXXXXX")
cleanup() { [ "${NUMA_VM_KEEP:-0}" = 1 ] && echo "vm.sh: kept $work" >&2 || rm -rf "$work"; }
trap cleanup EXIT
root=$work/root
mkdir -p "$root"/{bin,t,proc,sys,dev,tmp}
cp "$busybox" "$root/bin/busybox"

# A file and, if it is dynamically linked, its loader and libraries at the
# paths the loader will look for them.
add_libs() {
  ldd "$1" 2>/dev/null | while read -r a b c _; do
    local lib=""
    if [ "$b" = "=>" ] && [ "${c#/}" != "$c" ]; then lib=$c
    elif [ "${a#/}" != "$a" ]; then lib=$a; fi
    [ -n "$lib" ] || continue
    mkdir -p "$root$(dirname "$lib")"
    [ -e "$root$lib" ] || cp -L "$lib" "$root$lib"
  done
}
for f in "${files[@]}"; do
  [ -e "$f" ] || { echo "vm.sh: no such file: $f" >&2; exit 2; }
  cp -L "$f" "$root/t/"
  add_libs "$f"
done
cp "$script" "$root/t/test.sh"

args=""
for a in "$@"; do args="$args '${a//\'/\'\\\'\'}'"; done
cat >"$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/t
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
cd /t
echo "@@VM-START \$(ls -d /sys/devices/system/node/node* | wc -l) nodes"
sh /t/test.sh $args
echo "@@VM-EXIT \$?"
sync
reboot -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$work/initrd.cpio"

log=$work/console.log
# no_timer_check: the kernel's boot check that the timer interrupt ticks
# through the IO-APIC waits a few jiffies' worth of TSC cycles and expects
# at least 4 ticks meanwhile; a QEMU process descheduled on a loaded host
# finds that time passed with the missed ticks merged into one, and the
# guest panics ("IO-APIC + timer doesn't work!"). The emulated timer works.
timeout --foreground -k 5 "$timeout_s" "$qemu" -accel tcg -smp 2 -m 1G \
  -object memory-backend-ram,id=m0,size=512M -object memory-backend-ram,id=m1,size=512M \
  -numa node,nodeid=0,cpus=0,memdev=m0 -numa node,nodeid=1,cpus=1,memdev=m1 \
  -nographic -no-reboot -nodefaults -serial stdio -monitor none \
  -kernel "$kernel" -initrd "$work/initrd.cpio" \
  -append 'console=ttyS0 quiet panic=-1 loglevel=3 no_timer_check' </dev/null 2>&1 | tr -d '\r' | tee "$log" \
  | sed -n -e 's/.*@@VM-START/@@VM-START/' -e '/^@@VM-START/,/^@@VM-EXIT/p'
rc=${PIPESTATUS[0]}

if ! grep -aq '@@VM-START' "$log"; then
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && ! grep -q 'Kernel panic' "$log"; then
    echo "--- QEMU output:"; cat "$log"
    skip "QEMU could not start (exit $rc)"
  fi
  echo "--- console:"; cat "$log"
  echo "FAIL: the guest did not reach its init (exit $rc)"; exit 1
fi
if ! grep -aq '^@@VM-EXIT' "$log"; then
  echo "--- console after start:"; sed -n '/@@VM-START/,$p' "$log" | tail -n 40
  [ "$rc" -eq 124 ] && echo "FAIL: timeout after ${timeout_s} s" || echo "FAIL: the guest script did not finish (QEMU exit $rc)"
  exit 1
fi
exit "$(sed -n 's/^@@VM-EXIT \([0-9]*\).*/\1/p' "$log" | tail -n 1)"
