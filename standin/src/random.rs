//! Random bytes for getrandom() and AT_RANDOM: RDRAND when the CPU has it (SDM Vol. 1 §7.3.17),
//! else a xorshift generator seeded from the TSC (not secure; std's HashMap only needs keys
//! that differ from run to run).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static HAS_RDRAND: AtomicBool = AtomicBool::new(false);
static STATE: AtomicU64 = AtomicU64::new(0x853c_49e6_748f_ea9b);

/// Chooses the source.
pub fn init(rdrand: bool) {
    HAS_RDRAND.store(rdrand, Ordering::Relaxed);
    STATE.fetch_xor(crate::clock::rdtsc() | 1, Ordering::Relaxed);
}

/// Whether RDRAND is used.
pub fn uses_rdrand() -> bool {
    HAS_RDRAND.load(Ordering::Relaxed)
}

fn rdrand() -> Option<u64> {
    // The instruction may fail transiently (CF = 0): the SDM suggests 10 retries.
    for _ in 0..10 {
        let value: u64;
        let ok: u8;
        // SAFETY: RDRAND is offered by CPUID (checked by the caller); it only writes the two
        // output registers and the flags.
        unsafe {
            core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok, options(nomem, nostack));
        }
        if ok != 0 {
            return Some(value);
        }
    }
    None
}

fn xorshift() -> u64 {
    let mut x = STATE.load(Ordering::Relaxed) ^ crate::clock::rdtsc().rotate_left(32);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Fills `buf`.
pub fn fill(buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        let word = if uses_rdrand() {
            rdrand().unwrap_or_else(xorshift)
        } else {
            xorshift()
        };
        chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
    }
}
