//! The legacy 8259A interrupt controllers: moved off the exception vectors and masked.
//!
//! After a PC BIOS the master PIC delivers IRQ 0..7 at vectors 0x08..0x0F, the CPU's
//! exception vectors: the first PIT tick after interrupts are enabled would look like a double
//! fault. A kernel that uses the local APIC re-bases both PICs above the exceptions (a masked
//! PIC can still raise a spurious IRQ 7 or 15) and masks every line. The ICW sequence is the
//! `pic8259` crate's.

use pic8259::ChainedPics;

/// Re-bases the master PIC to `base` and the slave to `base + 8` (IRQs 0..15 land there if
/// ever raised, spurious ones included), then masks every IRQ line.
pub fn remap_and_mask(base: u8) {
    // SAFETY: ports 0x20/0x21/0xA0/0xA1 are the 8259A pair on PC-compatible machines (absent
    // ones ignore the writes); `base..base + 16` lies above the exception vectors (callers pass
    // the runtime's LEGACY_PIC_BASE), and every line is masked right after.
    unsafe {
        let mut pics = ChainedPics::new_contiguous(base);
        pics.initialize();
        pics.disable();
    }
}
