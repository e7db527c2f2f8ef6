//! Time for the program: the TSC, calibrated against the PIT, counts from boot (monotonic);
//! the CMOS clock read once at boot gives the wall-clock offset (realtime).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::pit;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static BOOT_UNIX_SECONDS: AtomicU64 = AtomicU64::new(0);

/// PIT periods measured (20 ms).
const PERIODS: u64 = 20;
/// Counter reads before giving up on a PIT that does not count.
const MAX_READS: u64 = 10_000_000;

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is available in 64-bit mode on every x86_64 CPU and CR4.TSD is clear.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Measures the TSC frequency over PERIODS reloads of PIT channel 0 (already running in mode
/// 2: its count falls from DIVISOR to 1 and jumps back, which marks each period). Interrupts
/// must be off. Returns the frequency in Hz.
pub fn calibrate() -> Result<u64, &'static str> {
    let mut last = pit::count();
    let mut start = 0;
    let mut reloads = 0;
    for _ in 0..MAX_READS {
        let count = pit::count();
        if count > last {
            let now = rdtsc();
            if reloads == 0 {
                start = now;
            } else if reloads == PERIODS {
                let cycles = now - start;
                let hz = cycles * pit::INPUT_HZ / (PERIODS * pit::DIVISOR as u64);
                TSC_HZ.store(hz, Ordering::Relaxed);
                BOOT_TSC.store(rdtsc(), Ordering::Relaxed);
                return Ok(hz);
            }
            reloads += 1;
        }
        last = count;
    }
    Err("the PIT's channel 0 does not count: cannot calibrate the TSC")
}

/// Sets the wall-clock time at boot (Unix seconds; 0 when unknown).
pub fn set_boot_time(unix_seconds: u64) {
    BOOT_UNIX_SECONDS.store(unix_seconds, Ordering::Relaxed);
}

/// Nanoseconds since calibration.
pub fn monotonic_ns() -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed).max(1);
    let cycles = rdtsc().wrapping_sub(BOOT_TSC.load(Ordering::Relaxed));
    (cycles as u128 * 1_000_000_000 / hz as u128) as u64
}

/// Nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    BOOT_UNIX_SECONDS.load(Ordering::Relaxed) * 1_000_000_000 + monotonic_ns()
}
