//! Locks that keep interrupts off on the holder's CPU: [`RawIrqSafe`], used as
//! [`IrqSafeMutex`] and [`IrqSafeTicketMutex`].
//!
//! **Use one for anything an interrupt handler also locks, at every place that locks it.** The
//! deadlock these prevent: code on CPU 3 takes a plain lock with interrupts on, an interrupt
//! arrives on CPU 3, and its handler asks for the same lock. The handler spins; the holder it
//! waits for is the code it interrupted, which cannot run again until the handler returns.
//! Disabling interrupts for as long as the lock is held closes that window: interrupts may
//! still run on *other* CPUs and wait there for the lock, which is ordinary contention.
//!
//! Rules for holders:
//!
//! - Release irq-safe guards in the reverse order of taking them (debug builds assert it):
//!   releasing the outer one first would switch interrupts back on while the inner lock is
//!   still held.
//! - Keep critical sections short: interrupts stay off on this CPU for all of it, and waiters
//!   spin with theirs off too.
//! - Never wait for another CPU to handle an interrupt (an IPI, a cross-CPU call, a TLB
//!   shootdown) while holding one: that CPU may be spinning, interrupts off, on this very lock.
//!
//! None of this helps against NMIs, which `cli` does not mask: an NMI handler must not take
//! any lock that other code on its CPU may hold.

use core::fmt;

use lock_api::{GuardNoSend, RawMutex};

use super::primitives::UnsafeCell;
use super::{RawSpinMutex, RawTicketLock};
use crate::arch::x86_64::irq::{self, SavedIrq};

/// Wraps the raw lock `R` so that interrupts are disabled on the locking CPU from before it
/// acquires `R` until after it releases it, then restored to what they were.
///
/// The interrupt state from before locking is kept in the lock itself, where only the holder
/// touches it, so `lock_api`'s ordinary guards work unchanged. Those guards cannot be sent to
/// another thread (`GuardNoSend`): the state belongs to the CPU that saved it, and restoring it
/// elsewhere would switch interrupts on on the wrong CPU.
///
/// Guards of the aliases cannot cross threads:
///
/// ```compile_fail
/// use multicore::sync::IrqSafeMutex;
/// static M: IrqSafeMutex<u32> = IrqSafeMutex::new(0);
/// fn needs_send<T: Send>(_: T) {}
/// needs_send(M.lock());
/// ```
pub struct RawIrqSafe<R> {
    inner: R,
    /// The holder's interrupt state from before it locked: `Some` while held. Guarded by
    /// `inner`.
    saved: UnsafeCell<Option<SavedIrq>>,
}

impl<R: fmt::Debug> fmt::Debug for RawIrqSafe<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `saved` belongs to the holder: not ours to read.
        f.debug_struct("RawIrqSafe")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

// SAFETY: the only thread-unsafe part is `saved`, and it is read or written only by the thread
// holding `inner` (after acquiring it, before releasing it); `inner`'s own `Acquire`/`Release`
// orders those accesses between successive holders.
unsafe impl<R: Sync> Sync for RawIrqSafe<R> {}

impl<R: RawMutex> RawIrqSafe<R> {
    const_fn_unless_loom! {
        /// Wraps `inner`, which should be unlocked: a locked one is never released, as no guard
        /// for it exists.
        pub fn new(inner: R) -> Self {
            RawIrqSafe { inner, saved: UnsafeCell::new(None) }
        }
    }

    /// Records `saved` for the unlock. Called right after acquiring `inner`.
    #[inline]
    fn set_saved(&self, saved: SavedIrq) {
        // SAFETY: the caller has just acquired `inner`, which grants exclusive access to `saved`.
        self.saved.with_mut(|slot| unsafe { *slot = Some(saved) });
    }
}

impl<R: RawMutex> Default for RawIrqSafe<R> {
    fn default() -> Self {
        Self::new(R::INIT)
    }
}

// SAFETY: `lock`/`try_lock` succeed exactly when `inner`'s do, and `unlock` releases `inner`
// once, so `RawIrqSafe<R>` excludes exactly as `R` does (and orders memory as `R` does).
// `GuardNoSend`: the saved interrupt state must be restored on the CPU that saved it.
unsafe impl<R: RawMutex> RawMutex for RawIrqSafe<R> {
    #[cfg(not(loom))]
    const INIT: Self = Self::new(R::INIT);
    /// Loom's atomics and cells cannot be created in a constant: build with
    /// `lock_api::Mutex::from_raw(RawIrqSafe::new(raw), value)` under loom.
    #[cfg(loom)]
    const INIT: Self = panic!("loom: use RawIrqSafe::new()");

    type GuardMarker = GuardNoSend;

    #[inline]
    fn lock(&self) {
        // Interrupts off *before* acquiring: an interrupt between acquiring and disabling could
        // run a handler on this CPU that spins forever on the lock this CPU now holds.
        let saved = irq::save_and_disable();
        self.inner.lock();
        self.set_saved(saved);
    }

    #[inline]
    fn try_lock(&self) -> bool {
        let saved = irq::save_and_disable();
        if self.inner.try_lock() {
            self.set_saved(saved);
            true
        } else {
            irq::restore(saved);
            false
        }
    }

    /// # Safety
    ///
    /// The caller holds the lock (`lock_api`'s contract for `RawMutex::unlock`), on the CPU
    /// that locked it (`GuardNoSend`).
    #[inline]
    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock, so holds `inner`: `saved` is ours to take.
        let saved = self.saved.with_mut(|slot| unsafe { (*slot).take() });
        let saved = saved.expect("RawIrqSafe unlocked but not locked");
        // Interrupts came back on while we held the lock: an irq-safe lock taken before this
        // one was released first (or someone enabled interrupts by hand). Not checked under
        // loom, whose threads share the host tests' thread-local interrupt flag.
        #[cfg(not(loom))]
        debug_assert!(
            !irq::enabled(),
            "interrupts enabled while an irq-safe lock is held: release irq-safe locks in reverse order"
        );
        // SAFETY: the caller holds the lock, i.e. `inner`.
        unsafe { self.inner.unlock() };
        // Only now: with interrupts back on before the release, a handler on this CPU could
        // still find the lock held by the code it interrupted.
        irq::restore(saved);
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }
}

/// A [`SpinMutex`](super::SpinMutex) that keeps interrupts off while held: for data an interrupt
/// handler also locks (see the [module docs](self)). `IrqSafeMutex::new` is `const`.
pub type IrqSafeMutex<T> = lock_api::Mutex<RawIrqSafe<RawSpinMutex>, T>;
/// The guard of an [`IrqSafeMutex`]: on drop it releases the lock, then restores interrupts.
pub type IrqSafeMutexGuard<'a, T> = lock_api::MutexGuard<'a, RawIrqSafe<RawSpinMutex>, T>;

/// A [`TicketMutex`](super::TicketMutex) that keeps interrupts off while held: the FIFO lock for
/// data an interrupt handler also locks. `IrqSafeTicketMutex::new` is `const`.
pub type IrqSafeTicketMutex<T> = lock_api::Mutex<RawIrqSafe<RawTicketLock>, T>;
/// The guard of an [`IrqSafeTicketMutex`]: on drop it releases the lock, then restores
/// interrupts.
pub type IrqSafeTicketMutexGuard<'a, T> = lock_api::MutexGuard<'a, RawIrqSafe<RawTicketLock>, T>;

#[cfg(all(test, not(loom)))]
mod tests {
    //! In host tests "interrupts enabled" is a per-thread flag (see `arch::x86_64::irq`).
    use super::*;
    use crate::arch::x86_64::irq::{enabled, IrqGuard};
    use std::thread;

    static STATIC_MUTEX: IrqSafeMutex<u32> = IrqSafeMutex::new(7);
    static STATIC_TICKET: IrqSafeTicketMutex<u32> = IrqSafeTicketMutex::new(7);

    #[test]
    fn interrupts_off_while_held_and_restored_after() {
        assert!(enabled());
        {
            let mut guard = STATIC_MUTEX.lock();
            assert!(!enabled());
            *guard += 1;
        }
        assert!(enabled());
        {
            let _guard = STATIC_TICKET.lock();
            assert!(!enabled());
        }
        assert!(enabled());
    }

    #[test]
    fn interrupts_already_off_stay_off() {
        let mutex = IrqSafeMutex::new(());
        let irqs_off = IrqGuard::new();
        drop(mutex.lock());
        assert!(
            !enabled(),
            "unlocking must not enable what locking did not disable"
        );
        drop(mutex.try_lock().expect("free"));
        assert!(!enabled());
        drop(irqs_off);
        assert!(enabled());
    }

    #[test]
    fn nested_locks_restore_in_order() {
        let outer = IrqSafeMutex::new(());
        let inner = IrqSafeTicketMutex::new(());
        let outer_guard = outer.lock();
        let inner_guard = inner.lock();
        assert!(!enabled());
        drop(inner_guard);
        assert!(
            !enabled(),
            "the inner lock must not re-enable: the outer one is still held"
        );
        drop(outer_guard);
        assert!(enabled());
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "reverse order")]
    fn releasing_out_of_order_is_caught() {
        let outer = IrqSafeMutex::new(());
        let inner = IrqSafeMutex::new(());
        let outer_guard = outer.lock();
        let inner_guard = inner.lock();
        drop(outer_guard); // Re-enables interrupts while `inner` is still held.
        drop(inner_guard);
    }

    #[test]
    fn try_lock() {
        let mutex = IrqSafeMutex::new(());
        let guard = mutex.try_lock().expect("free lock");
        assert!(!enabled());
        assert!(mutex.try_lock().is_none());
        assert!(
            !enabled(),
            "a failed try_lock must not enable interrupts the holder disabled"
        );
        thread::scope(|s| {
            s.spawn(|| {
                assert!(mutex.try_lock().is_none(), "held by another thread");
                assert!(enabled(), "a failed try_lock restores interrupts");
            });
        });
        drop(guard);
        assert!(enabled());
    }

    fn count<R: RawMutex + Sync>(mutex: lock_api::Mutex<RawIrqSafe<R>, usize>) -> usize {
        // Few rounds: the ticket variant hands the lock to one particular thread, and on a
        // loaded two-core host that thread may wait behind other processes for every hand-off.
        const THREADS: usize = 4;
        const ITERS: usize = 2_000;
        thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..ITERS {
                        let mut guard = mutex.lock();
                        assert!(!enabled());
                        let seen = *guard;
                        *guard = seen + 1;
                    }
                    assert!(enabled());
                });
            }
        });
        mutex.into_inner()
    }

    #[test]
    fn threads_reach_exact_total() {
        assert_eq!(count(IrqSafeMutex::new(0)), 8_000);
        assert_eq!(count(IrqSafeTicketMutex::new(0)), 8_000);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Mutual exclusion only. Loom runs all its threads on one OS thread, so they share the
    //! thread-local interrupt flag of `arch::x86_64::irq`'s host stand-in: the flag says nothing
    //! about a single model thread here and is not asserted on.
    use super::*;
    use crate::sync::loom_models;

    #[test]
    fn spin_excludes() {
        loom::model(|| loom_models::mutex(|| RawIrqSafe::new(RawSpinMutex::new()), 2, 0));
    }

    #[test]
    fn ticket_excludes_with_try_lock() {
        loom::model(|| loom_models::mutex(|| RawIrqSafe::new(RawTicketLock::new()), 1, 2));
    }
}
