//! The legacy 8259A interrupt controllers: moved off the exception vectors and masked.
//!
//! After a PC BIOS the master PIC delivers IRQ 0..7 at vectors 0x08..0x0F, the CPU's
//! exception vectors: the first PIT tick after interrupts are enabled would look like a double
//! fault. A kernel that uses the local APIC re-bases both PICs above the exceptions (a masked
//! PIC can still raise a spurious IRQ 7 or 15) and masks every line.

use x86_64::instructions::port::Port;

const MASTER_COMMAND: u16 = 0x20;
const MASTER_DATA: u16 = 0x21;
const SLAVE_COMMAND: u16 = 0xA0;
const SLAVE_DATA: u16 = 0xA1;
/// ICW1: initialization, ICW4 follows (8259A datasheet, "Initialization Command Words").
const ICW1_INIT_ICW4: u8 = 0x11;
/// ICW4: 8086 mode.
const ICW4_8086: u8 = 0x01;

/// Re-bases the master PIC to `base` and the slave to `base + 8` (IRQs 0..15 land there if
/// ever raised, spurious ones included), then masks every IRQ line.
pub fn remap_and_mask(base: u8) {
    let mut master_cmd: Port<u8> = Port::new(MASTER_COMMAND);
    let mut master_data: Port<u8> = Port::new(MASTER_DATA);
    let mut slave_cmd: Port<u8> = Port::new(SLAVE_COMMAND);
    let mut slave_data: Port<u8> = Port::new(SLAVE_DATA);
    // SAFETY: ports 0x20/0x21/0xA0/0xA1 are the 8259A pair on PC-compatible machines (absent
    // ones ignore the writes); the sequence ICW1..ICW4 then OCW1 only re-bases and masks them.
    unsafe {
        master_cmd.write(ICW1_INIT_ICW4);
        slave_cmd.write(ICW1_INIT_ICW4);
        master_data.write(base); // ICW2: vector base
        slave_data.write(base + 8);
        master_data.write(1 << 2); // ICW3: slave on IRQ 2
        slave_data.write(2); // ICW3: slave identity
        master_data.write(ICW4_8086);
        slave_data.write(ICW4_8086);
        master_data.write(0xFF); // OCW1: mask all
        slave_data.write(0xFF);
    }
}
