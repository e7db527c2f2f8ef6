//! The two 8259A interrupt controllers, remapped past the exception vectors with only the
//! timer (IRQ 0) unmasked: the PIT reaches the CPU through them, as on the machines QEMU's pc
//! and microvm models (8259A datasheet: ICW1..ICW4, OCW1 masks, OCW2 EOI, OCW3 register read).

use x86_64::instructions::port::Port;

const MASTER_COMMAND: u16 = 0x20;
const MASTER_DATA: u16 = 0x21;
const SLAVE_COMMAND: u16 = 0xA0;
const SLAVE_DATA: u16 = 0xA1;
/// ICW1: edge-triggered, cascade, ICW4 follows.
const ICW1_INIT_WITH_ICW4: u8 = 0x11;
/// ICW4: 8086 mode.
const ICW4_8086: u8 = 0x01;
/// OCW2: non-specific end of interrupt.
const EOI: u8 = 0x20;
/// OCW3: the next read of the command port returns the in-service register.
const READ_ISR: u8 = 0x0B;

/// IRQ 0..7 arrive at vectors BASE..BASE+7, IRQ 8..15 at BASE+8..BASE+15.
pub const BASE: u8 = 0x20;

/// The vector `irq` arrives at.
pub const fn vector_of(irq: u8) -> u64 {
    (BASE + irq) as u64
}

/// The IRQ behind `vector`, if it is one of the 16.
pub fn irq_of(vector: u64) -> Option<u8> {
    (vector >= BASE as u64 && vector < BASE as u64 + 16).then(|| (vector - BASE as u64) as u8)
}

fn out(port: u16, value: u8) {
    // SAFETY: the 8259A ports; only this module drives them.
    unsafe { Port::<u8>::new(port).write(value) };
}

fn read(port: u16) -> u8 {
    // SAFETY: as in `out`.
    unsafe { Port::<u8>::new(port).read() }
}

/// Remaps both controllers to BASE.. and masks every IRQ but IRQ 0 (the timer).
pub fn init_timer_only() {
    out(MASTER_COMMAND, ICW1_INIT_WITH_ICW4);
    out(SLAVE_COMMAND, ICW1_INIT_WITH_ICW4);
    out(MASTER_DATA, BASE);
    out(SLAVE_DATA, BASE + 8);
    out(MASTER_DATA, 1 << 2); // ICW3: the slave hangs on IRQ 2
    out(SLAVE_DATA, 2); // ICW3: the slave's cascade identity
    out(MASTER_DATA, ICW4_8086);
    out(SLAVE_DATA, ICW4_8086);
    out(MASTER_DATA, !1); // OCW1: only IRQ 0
    out(SLAVE_DATA, 0xFF);
}

/// Acknowledges `irq` (both controllers for IRQ 8..15).
pub fn end_of_interrupt(irq: u8) {
    if irq >= 8 {
        out(SLAVE_COMMAND, EOI);
    }
    out(MASTER_COMMAND, EOI);
}

fn in_service(command_port: u16, bit: u8) -> bool {
    out(command_port, READ_ISR);
    read(command_port) & (1 << bit) != 0
}

/// A masked IRQ or a spurious one (IRQ 7/15 raised and withdrawn: not in service, and a
/// spurious IRQ 7 must not be acknowledged, a spurious IRQ 15 only at the master).
pub fn unexpected(vector: u64) {
    let Some(irq) = irq_of(vector) else { return };
    match irq {
        7 if !in_service(MASTER_COMMAND, 7) => {}
        15 if !in_service(SLAVE_COMMAND, 7) => out(MASTER_COMMAND, EOI),
        _ => end_of_interrupt(irq),
    }
}
