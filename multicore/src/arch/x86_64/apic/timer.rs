//! The local APIC timer: one-shot interrupts for timeouts and, later, scheduler ticks.
//!
//! TSC-deadline mode where CPUID offers it (CPUID.01H:ECX\[24\]; SDM Vol. 3A §11.5.4.1): the
//! timer fires when the TSC reaches a value written to IA32_TSC_DEADLINE, so it shares the
//! TSC's calibration. Otherwise one-shot mode, counting down from an initial count at a rate
//! measured once against the TSC.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::model_specific::Msr;

use super::{LocalApic, Register};
use crate::arch::x86_64::tsc::{self, Tsc};

/// IA32_TSC_DEADLINE (SDM Vol. 4 Table 2-2, 0x6E0).
const IA32_TSC_DEADLINE: Msr = Msr::new(0x6E0);
/// LVT timer mode field (bits 18:17): 00 one-shot, 10 TSC-deadline.
const LVT_MODE_ONE_SHOT: u32 = 0b00 << 17;
const LVT_MODE_TSC_DEADLINE: u32 = 0b10 << 17;
/// LVT mask bit.
const LVT_MASKED: u32 = 1 << 16;
/// Divide configuration 0b0011: divide the bus clock by 16 (SDM Vol. 3A Figure 11-10).
const DIVIDE_BY_16: u32 = 0b0011;

/// How the timer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerMode {
    /// IA32_TSC_DEADLINE.
    TscDeadline,
    /// One-shot countdown at `ticks_per_ms` (after the divide-by-16).
    OneShot {
        /// Timer counts per millisecond.
        ticks_per_ms: u64,
    },
}

/// One-shot rate measured on the BSP (0: not measured), shared by every CPU: they all run the
/// same bus clock.
static ONE_SHOT_TICKS_PER_MS: AtomicU64 = AtomicU64::new(0);

fn has_tsc_deadline() -> bool {
    raw_cpuid::CpuId::new()
        .get_feature_info()
        .is_some_and(|f| f.has_tsc_deadline())
}

/// Sets up this CPU's timer to raise `vector` (masked until armed). On the first CPU without
/// TSC-deadline, measures the one-shot rate against the TSC for 10 ms.
pub fn init(apic: &LocalApic, tsc: &Tsc, vector: u8) -> TimerMode {
    if has_tsc_deadline() {
        apic.write(Register::LvtTimer, vector as u32 | LVT_MODE_TSC_DEADLINE);
        return TimerMode::TscDeadline;
    }
    apic.write(Register::TimerDivide, DIVIDE_BY_16);
    let mut ticks_per_ms = ONE_SHOT_TICKS_PER_MS.load(Ordering::Relaxed);
    if ticks_per_ms == 0 {
        apic.write(
            Register::LvtTimer,
            vector as u32 | LVT_MODE_ONE_SHOT | LVT_MASKED,
        );
        apic.write(Register::TimerInitialCount, u32::MAX);
        let start = tsc::now();
        tsc.delay_us(10_000);
        let counted = u32::MAX - apic.read(Register::TimerCurrentCount);
        let elapsed_us = tsc.ticks_to_us(tsc::now() - start).max(1);
        apic.write(Register::TimerInitialCount, 0);
        ticks_per_ms = (counted as u64 * 1000 / elapsed_us).max(1);
        ONE_SHOT_TICKS_PER_MS.store(ticks_per_ms, Ordering::Relaxed);
    }
    apic.write(Register::LvtTimer, vector as u32 | LVT_MODE_ONE_SHOT);
    TimerMode::OneShot { ticks_per_ms }
}

/// Arms the timer to fire once, `us` microseconds from now.
pub fn arm_oneshot(apic: &LocalApic, mode: TimerMode, tsc: &Tsc, us: u64) {
    match mode {
        TimerMode::TscDeadline => {
            let mut msr = IA32_TSC_DEADLINE;
            // SAFETY: CPUID reports TSC-deadline and the LVT is in TSC-deadline mode (init);
            // writing a deadline only schedules this CPU's timer interrupt.
            unsafe { msr.write(tsc.deadline_us(us).max(1)) };
        }
        TimerMode::OneShot { ticks_per_ms } => {
            let count = (ticks_per_ms * us / 1000).clamp(1, u32::MAX as u64) as u32;
            apic.write(Register::TimerInitialCount, count);
        }
    }
}

/// Cancels an armed timer.
pub fn disarm(apic: &LocalApic, mode: TimerMode) {
    match mode {
        TimerMode::TscDeadline => {
            let mut msr = IA32_TSC_DEADLINE;
            // SAFETY: as in arm_oneshot; 0 disarms (SDM Vol. 3A §11.5.4.1).
            unsafe { msr.write(0) };
        }
        TimerMode::OneShot { .. } => apic.write(Register::TimerInitialCount, 0),
    }
}
