//! Turning interrupts off and back on around critical sections, nestably.
//!
//! Host unit tests and loom runs execute the same callers in user mode, where `cli` would
//! fault: there the functions only track the state in a thread-local flag, so lock code can be
//! tested unchanged.

/// Interrupt state saved by [`save_and_disable`], restored by [`restore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the saved state must be restored"]
pub struct SavedIrq {
    were_enabled: bool,
}

/// Disables interrupts on this CPU and returns whether they were enabled.
#[inline]
pub fn save_and_disable() -> SavedIrq {
    let were_enabled = enabled();
    imp::disable();
    SavedIrq { were_enabled }
}

/// Re-enables interrupts if they were enabled when `saved` was taken.
#[inline]
pub fn restore(saved: SavedIrq) {
    if saved.were_enabled {
        imp::enable();
    }
}

/// Whether interrupts are enabled on this CPU.
#[inline]
pub fn enabled() -> bool {
    imp::enabled()
}

/// RAII form: interrupts off until the guard drops.
#[derive(Debug)]
pub struct IrqGuard {
    saved: SavedIrq,
}

impl IrqGuard {
    /// Disables interrupts until the guard is dropped.
    #[inline]
    pub fn new() -> IrqGuard {
        IrqGuard {
            saved: save_and_disable(),
        }
    }
}

impl Default for IrqGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for IrqGuard {
    #[inline]
    fn drop(&mut self) {
        restore(self.saved);
    }
}

#[cfg(not(any(test, loom)))]
mod imp {
    #[inline]
    pub fn disable() {
        x86_64::instructions::interrupts::disable();
    }
    #[inline]
    pub fn enable() {
        x86_64::instructions::interrupts::enable();
    }
    #[inline]
    pub fn enabled() -> bool {
        x86_64::instructions::interrupts::are_enabled()
    }
}

#[cfg(any(test, loom))]
mod imp {
    //! User-mode stand-in: a per-thread "interrupts enabled" flag, initially on.
    use std::cell::Cell;
    std::thread_local!(static ENABLED: Cell<bool> = const { Cell::new(true) });
    pub fn disable() {
        ENABLED.with(|e| e.set(false));
    }
    pub fn enable() {
        ENABLED.with(|e| e.set(true));
    }
    pub fn enabled() -> bool {
        ENABLED.with(|e| e.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_guards_restore_the_outer_state() {
        assert!(enabled());
        {
            let _outer = IrqGuard::new();
            assert!(!enabled());
            {
                let _inner = IrqGuard::new();
                assert!(!enabled());
            }
            assert!(!enabled(), "the inner guard must not re-enable");
        }
        assert!(enabled());
    }
}
