#!/usr/bin/env bash
# Dumps the firmware tables QEMU's machines give (SeaBIOS's ACPI and MP tables, qboot's on
# microvm) for the fuzz seed corpus: each machine boots with no kernel, its firmware writes
# the tables and finds nothing to boot, and the monitor saves physical [0, 1 MiB) and the top
# MiB of its 128 MiB of RAM. Then `fuzz_seeds` turns each dump into machine-image seeds:
#   fuzz/qemu_tables.sh target/fuzz/dumps
#   cargo run -p fuzz_targets --bin fuzz_seeds -- fuzz/corpus target/fuzz/dumps
# The 288-CPU machine (x2APIC entries) needs KVM; it is skipped without it.
set -euo pipefail
out=${1:?usage: qemu_tables.sh <dump dir>}
mkdir -p "$out"
out=$(cd "$out" && pwd)
qemu=${QEMU:-qemu-system-x86_64}

dump() {
    local name=$1
    shift
    # The monitor reads commands from stdin; the firmware needs a few seconds under TCG.
    { sleep 6
      echo "pmemsave 0 0x100000 \"$out/$name.low\""
      echo "pmemsave 0x7f00000 0x100000 \"$out/$name.high\""
      sleep 1
      echo quit
    } | timeout 120 flock /tmp/qemu.lock "$qemu" -display none -serial none -monitor stdio \
        -m 128M "$@" > "$out/$name.log" 2>&1 || true
    if [ -s "$out/$name.high" ]; then echo "dumped $name"; else echo "skipped $name (see $out/$name.log)"; fi
}

dump pc4 -M pc -smp 4 -accel tcg
dump q35-sparse -M q35 -smp 6,sockets=2,cores=3 -accel tcg
dump pc-noacpi -M pc,acpi=off -smp 4 -accel tcg
dump microvm -M microvm -smp 2 -accel tcg
dump q35-288 -M q35,kernel-irqchip=split -device intel-iommu,intremap=on,eim=on -smp 288 \
    -accel kvm -cpu host,-arch-capabilities
