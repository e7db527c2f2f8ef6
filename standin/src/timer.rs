//! The timer tick: IRQ 0 from the PIT at 1 kHz, counted; `times()` returns the count (the
//! tests use it to see the timer tick while the program runs with interrupts on).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::{pic, pit};

/// The PIT's IRQ line.
pub const IRQ: u8 = 0;

static TICKS: AtomicU64 = AtomicU64::new(0);

/// Starts the tick: the PIT at 1 kHz, the PIC passing IRQ 0 only. Interrupts stay off until the
/// program starts.
pub fn start() {
    pic::init_timer_only();
    pit::start_periodic();
}

/// One tick (called from the IRQ 0 handler).
pub fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
    pic::end_of_interrupt(IRQ);
}

/// Ticks so far.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}
