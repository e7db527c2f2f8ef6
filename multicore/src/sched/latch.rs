//! Latches: "this job is done" flags that a waiting worker can sleep on. Whoever sets a latch
//! wakes the worker that waits for it if that worker sleeps (sleep.rs has the protocol).
//!
//! A latch on a joiner's stack may be freed the moment it is set, so its setter reads the owner
//! before setting ([`Latch::set_and_wake`]: the owner is fixed when the latch is made). A latch
//! in shared memory that outlives the setter (a detached spawn's result, kept alive by the
//! setter's reference) may get its owner later, when someone starts to wait
//! ([`Latch::register_owner`], [`Latch::set_and_wake_shared`]).

use super::registry::Registry;
use crate::sync::primitives::{fence, AtomicBool, AtomicUsize, Ordering};

const NO_OWNER: usize = usize::MAX;

/// A one-shot flag with an owner to wake.
pub(crate) struct Latch {
    set: AtomicBool,
    owner: AtomicUsize,
}

impl Latch {
    /// An unset latch whose waiter is `owner` (a worker index), if known.
    #[inline]
    pub(crate) fn new(owner: Option<usize>) -> Latch {
        Latch {
            set: AtomicBool::new(false),
            owner: AtomicUsize::new(owner.unwrap_or(NO_OWNER)),
        }
    }

    /// Whether it is set; an acquire, so what the setter wrote before is visible after `true`.
    #[inline]
    pub(crate) fn probe(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Sets a latch whose owner was fixed when it was made, and wakes the owner if it sleeps.
    ///
    /// # Safety
    /// `this` points to a live latch, which its waiter may free as soon as it is set: nothing of
    /// it is touched after the store.
    pub(crate) unsafe fn set_and_wake(this: *const Latch, registry: &Registry) {
        // SAFETY: alive until the store (the caller's contract).
        let owner = unsafe { (*this).owner.load(Ordering::Relaxed) };
        // SAFETY: as above; the last access.
        unsafe { (*this).set.store(true, Ordering::Release) };
        if owner != NO_OWNER {
            registry.wake_owner(owner);
        }
    }

    /// Worker `w` will wait for this shared latch: it is woken when the latch is set.
    pub(crate) fn register_owner(&self, w: usize) {
        self.owner.store(w, Ordering::Relaxed);
        // Before the waiter's next probe: against the setter's store-fence-load of the owner,
        // one of the two sees the other (sleep.rs).
        fence(Ordering::SeqCst);
    }

    /// Sets a latch that stays alive after this call (the setter holds a reference) and wakes
    /// whoever registered to wait for it.
    pub(crate) fn set_and_wake_shared(&self, registry: &Registry) {
        self.set.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        let owner = self.owner.load(Ordering::Relaxed);
        if owner != NO_OWNER {
            registry.wake_owner(owner);
        }
    }
}
