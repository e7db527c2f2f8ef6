//! The running CPU's local APIC timer, for timeouts and sleeps.

use super::{idle, this_cpu, tsc};
use crate::arch::x86_64::apic::timer as apic_timer;
use crate::sync::primitives::Ordering;

/// Arms this CPU's timer to interrupt once, `us` microseconds from now.
pub fn arm(us: u64) {
    let cpu = this_cpu();
    let mode = cpu
        .timer_mode()
        .expect("the timer is set up when a CPU joins");
    apic_timer::arm_oneshot(&cpu.apic, mode, &tsc(), us);
}

/// Cancels this CPU's armed timer.
pub fn disarm() {
    let cpu = this_cpu();
    if let Some(mode) = cpu.timer_mode() {
        apic_timer::disarm(&cpu.apic, mode);
    }
}

/// Halts this CPU (interrupts on, serving cross-CPU calls) until its timer has fired `us`
/// microseconds from now.
pub fn sleep_us(us: u64) {
    let cpu = this_cpu();
    let before = cpu.timer_interrupts.load(Ordering::Acquire);
    arm(us);
    idle::wait_until(|| cpu.timer_interrupts.load(Ordering::Acquire) > before);
}
