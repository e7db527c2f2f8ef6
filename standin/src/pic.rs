//! The two 8259A interrupt controllers, remapped past the exception vectors with only the
//! timer (IRQ 0) unmasked: the PIT reaches the CPU through them, as on the machines QEMU's pc
//! and microvm models. Initialization and EOI are the `pic8259` crate's; telling a spurious
//! IRQ 7/15 from a real one reads the in-service register, which the crate does not offer
//! (8259A datasheet: OCW3 register read).

use pic8259::ChainedPics;
use spin::Mutex;
use x86_64::instructions::port::Port;

const MASTER_COMMAND: u16 = 0x20;
const SLAVE_COMMAND: u16 = 0xA0;
/// OCW2: non-specific end of interrupt.
const EOI: u8 = 0x20;
/// OCW3: the next read of the command port returns the in-service register.
const READ_ISR: u8 = 0x0B;

/// IRQ 0..7 arrive at vectors BASE..BASE+7, IRQ 8..15 at BASE+8..BASE+15.
pub const BASE: u8 = 0x20;

// SAFETY: BASE..BASE+16 lies above the exception vectors; only this module drives the PICs.
static PICS: Mutex<ChainedPics> = Mutex::new(unsafe { ChainedPics::new_contiguous(BASE) });

/// The vector `irq` arrives at.
pub const fn vector_of(irq: u8) -> u64 {
    (BASE + irq) as u64
}

/// The IRQ behind `vector`, if it is one of the 16.
pub fn irq_of(vector: u64) -> Option<u8> {
    (vector >= BASE as u64 && vector < BASE as u64 + 16).then(|| (vector - BASE as u64) as u8)
}

/// Remaps both controllers to BASE.. and masks every IRQ but IRQ 0 (the timer).
pub fn init_timer_only() {
    let mut pics = PICS.lock();
    // SAFETY: the 8259A pair on a PC; re-based above the exceptions, then all masked but IRQ 0,
    // whose handler (timer.rs) is in the IDT before interrupts are enabled.
    unsafe {
        pics.initialize();
        pics.write_masks(!1, 0xFF);
    }
}

/// Acknowledges `irq` (both controllers for IRQ 8..15).
pub fn end_of_interrupt(irq: u8) {
    // SAFETY: `irq` was raised by the PICs (a handler acknowledges only its own IRQ).
    unsafe { PICS.lock().notify_end_of_interrupt(BASE + irq) };
}

fn in_service(command_port: u16, bit: u8) -> bool {
    let mut port = Port::<u8>::new(command_port);
    // SAFETY: an 8259A command port: OCW3 selects the in-service register, the read returns
    // it; neither changes what the controller delivers.
    unsafe {
        port.write(READ_ISR);
        port.read() & (1 << bit) != 0
    }
}

/// A masked IRQ or a spurious one (IRQ 7/15 raised and withdrawn: not in service, and a
/// spurious IRQ 7 must not be acknowledged, a spurious IRQ 15 only at the master).
pub fn unexpected(vector: u64) {
    let Some(irq) = irq_of(vector) else { return };
    match irq {
        7 if !in_service(MASTER_COMMAND, 7) => {}
        15 if !in_service(SLAVE_COMMAND, 7) => {
            // SAFETY: a non-specific EOI to the master, which did deliver the cascade IRQ 2.
            unsafe { Port::<u8>::new(MASTER_COMMAND).write(EOI) }
        }
        _ => end_of_interrupt(irq),
    }
}
