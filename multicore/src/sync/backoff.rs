//! Capped exponential backoff for CPUs that lost a race for a lock word.

use super::primitives::spin_hint;

/// Most `spin_hint`s between two looks at a contended lock word. `pause` takes ~140 cycles on
/// Skylake and later (~10 before), so the cap is a few microseconds at most: long enough that
/// hundreds of waiters stop hammering the cache line, short enough not to miss a release by
/// much. Under loom every hint is a yield to the scheduler, and one is all it needs.
#[cfg(not(loom))]
const MAX_SPINS: u32 = 1 << 6;
#[cfg(loom)]
const MAX_SPINS: u32 = 1;

/// Spins for 1, 2, 4, ... up to [`MAX_SPINS`] hints on successive calls.
pub(crate) struct Backoff {
    spins: u32,
}

impl Backoff {
    /// A backoff whose first [`Backoff::spin`] is a single hint.
    #[inline]
    pub(crate) fn new() -> Self {
        Backoff { spins: 1 }
    }

    /// Waits, then doubles the next wait (up to the cap).
    #[inline]
    pub(crate) fn spin(&mut self) {
        for _ in 0..self.spins {
            spin_hint();
        }
        if self.spins < MAX_SPINS {
            self.spins *= 2;
        }
    }
}
