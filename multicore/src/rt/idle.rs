//! Idling: halt with interrupts on until there is something to do, without losing a wake-up.
//!
//! The race: a CPU checks "nothing to do", an IPI arrives and is handled, then the CPU halts
//! and sleeps through the work the IPI announced. Checking with interrupts off and halting
//! with `sti; hlt` closes it: STI takes effect only after the next instruction (SDM Vol. 2B
//! STI: "interrupts are recognized after the instruction following STI"), so an interrupt that
//! became pending after the check wakes the HLT instead of being taken before it.

use super::this_cpu;

/// Halts until `ready()` is true, serving this CPU's cross-CPU calls meanwhile. Interrupts are
/// on when it returns. Must be called with the runtime running on this CPU.
pub fn wait_until(mut ready: impl FnMut() -> bool) {
    let cpu = this_cpu();
    loop {
        x86_64::instructions::interrupts::disable();
        cpu.calls.run_pending();
        if ready() {
            x86_64::instructions::interrupts::enable();
            return;
        }
        // SAFETY: STI; HLT as one sequence: the interrupt shadow of STI covers HLT, so a
        // pending interrupt wakes the HLT (see the module docs). No memory is touched.
        unsafe { core::arch::asm!("sti", "hlt", options(nomem, nostack)) };
    }
}

/// The idle loop of a runtime CPU: serve cross-CPU calls, halt in between. Never returns.
pub fn idle_loop() -> ! {
    loop {
        wait_until(|| false);
    }
}
