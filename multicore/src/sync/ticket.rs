//! A fair (FIFO) ticket spin lock, [`RawTicketLock`], used through `lock_api` as
//! [`TicketMutex`].

use lock_api::{GuardSend, RawMutex};

use super::primitives::{
    spin_hint, AtomicU32,
    Ordering::{Acquire, Relaxed, Release},
};

/// Most `spin_hint`s between two looks at `serving`: see [`RawTicketLock::lock`].
#[cfg(not(loom))]
const MAX_SPINS: u32 = 1 << 6;
/// Under loom a hint is a yield to the model's scheduler, and one is all it needs.
#[cfg(loom)]
const MAX_SPINS: u32 = 1;

/// A ticket lock: CPUs get the lock in the order they asked for it. Use it as [`TicketMutex`].
///
/// Like the queue at a deli counter: taking the lock draws the next number from `next`, then
/// waits until `serving` shows that number; unlocking advances `serving` by one. No CPU can be
/// overtaken, so with N CPUs contending a waiter gets in after at most N - 1 critical sections,
/// where a [`RawSpinMutex`] may let the same CPU win again and again.
///
/// The price: each release hands the lock to one specific CPU, so if that CPU is slow to notice
/// (for instance it is a vCPU the host has descheduled) everyone behind it waits too.
///
/// Both counters are `u32` and wrap: they are only compared for equality and subtracted with
/// wrapping arithmetic, which is right as long as fewer than 2^32 CPUs wait at once.
///
/// [`RawSpinMutex`]: super::RawSpinMutex
#[derive(Debug)]
pub struct RawTicketLock {
    /// The ticket the next CPU to arrive will draw.
    next: AtomicU32,
    /// The ticket whose holder may hold the lock; written only by the holder, when leaving.
    serving: AtomicU32,
}

impl RawTicketLock {
    const_fn_unless_loom! {
        /// An unlocked lock (the same as [`RawMutex::INIT`], which loom builds cannot use).
        pub fn new() -> Self {
            RawTicketLock { next: AtomicU32::new(0), serving: AtomicU32::new(0) }
        }
    }

    /// An unlocked lock whose counters start at `ticket`, to test wrap-around.
    #[cfg(test)]
    fn starting_at(ticket: u32) -> Self {
        RawTicketLock {
            next: AtomicU32::new(ticket),
            serving: AtomicU32::new(ticket),
        }
    }

    /// How many CPUs hold or wait for the lock: 0 when free, 1 when held without waiters.
    ///
    /// A snapshot that may be out of date by the time it is returned; for statistics and tests.
    pub fn contenders(&self) -> u32 {
        // `serving` first, with `Acquire`: the unlock that wrote the value read happened after
        // that holder drew its ticket, so the `next` read below is at least as new, and the
        // difference cannot wrap below zero.
        let serving = self.serving.load(Acquire);
        let next = self.next.load(Relaxed);
        next.wrapping_sub(serving)
    }
}

impl Default for RawTicketLock {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `fetch_add` hands every ticket to exactly one caller, and a caller enters only when
// `serving` equals its ticket; `serving` advances (by the holder alone, in `unlock`) one step at
// a time, so exactly one ticket holder is inside at any time. `try_lock` takes the ticket equal
// to `serving` only if nobody has drawn it yet, which leaves the same invariant. The holder's
// `Release` store of `serving` is read by the next holder's `Acquire` load, ordering the critical
// sections. The holder can be on any thread, hence `GuardSend`.
unsafe impl RawMutex for RawTicketLock {
    #[cfg(not(loom))]
    const INIT: Self = Self::new();
    /// Loom's atomics cannot be created in a constant: build with
    /// `lock_api::Mutex::from_raw(RawTicketLock::new(), value)` under loom.
    #[cfg(loom)]
    const INIT: Self = panic!("loom: use RawTicketLock::new()");

    type GuardMarker = GuardSend;

    /// Draws a ticket and waits for it to be served.
    ///
    /// The wait is proportional to the queue ahead (capped): a CPU with many waiters before it
    /// will not be served soon, so it looks at `serving`, the line every waiter reads, less often.
    #[inline]
    fn lock(&self) {
        // `Relaxed`: the ticket is only a place in the queue. Synchronization with the previous
        // holder comes from the `Acquire` load of `serving` that lets us in.
        let ticket = self.next.fetch_add(1, Relaxed);
        loop {
            let serving = self.serving.load(Acquire);
            if serving == ticket {
                return;
            }
            let ahead = ticket.wrapping_sub(serving);
            for _ in 0..ahead.min(MAX_SPINS) {
                spin_hint();
            }
        }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        // The lock is free exactly when the ticket `serving` shows has not been drawn: draw it
        // only if it is still the next one. Seeing value `s` in `serving` means the holder of
        // ticket `s - 1` has left, and the `Acquire` load synchronizes with its `Release`
        // store; the CAS only claims the ticket, so it can be `Relaxed`.
        let serving = self.serving.load(Acquire);
        self.next
            .compare_exchange(serving, serving.wrapping_add(1), Relaxed, Relaxed)
            .is_ok()
    }

    /// # Safety
    ///
    /// The caller holds the lock (`lock_api`'s contract for `RawMutex::unlock`).
    #[inline]
    unsafe fn unlock(&self) {
        // Only the holder writes `serving`, so a load and a store (no RMW) cannot lose an update;
        // the load sees our own ticket, the last value written. `Release` hands our critical
        // section to the next ticket's holder, whose `Acquire` load reads this store.
        let serving = self.serving.load(Relaxed);
        debug_assert_ne!(
            self.next.load(Relaxed),
            serving,
            "unlocking an unlocked RawTicketLock"
        );
        self.serving.store(serving.wrapping_add(1), Release);
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.contenders() != 0
    }
}

/// A mutex built on [`RawTicketLock`]: FIFO among contending CPUs. `TicketMutex::new` is
/// `const`, for `static`s.
pub type TicketMutex<T> = lock_api::Mutex<RawTicketLock, T>;
/// The guard of a [`TicketMutex`]: the lock is held until it drops.
pub type TicketMutexGuard<'a, T> = lock_api::MutexGuard<'a, RawTicketLock, T>;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::thread;

    const THREADS: usize = 4;
    // Few rounds: each hand-off goes to one particular thread, which on a loaded two-core host
    // may wait behind other processes.
    const ITERS: usize = 2_000;

    static STATIC_MUTEX: TicketMutex<u32> = TicketMutex::new(7);

    #[test]
    fn static_works() {
        *STATIC_MUTEX.lock() += 1;
        assert_eq!(*STATIC_MUTEX.lock(), 8);
    }

    fn count_with(mutex: TicketMutex<usize>) -> usize {
        thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..ITERS {
                        let mut guard = mutex.lock();
                        let seen = *guard;
                        *guard = seen + 1;
                    }
                });
            }
        });
        mutex.into_inner()
    }

    #[test]
    fn threads_reach_exact_total() {
        assert_eq!(count_with(TicketMutex::new(0)), THREADS * ITERS);
    }

    #[test]
    fn threads_reach_exact_total_across_wrap_around() {
        let raw = RawTicketLock::starting_at(u32::MAX - 100);
        assert_eq!(count_with(TicketMutex::from_raw(raw, 0)), THREADS * ITERS);
    }

    #[test]
    fn wraps_around() {
        let mutex = TicketMutex::from_raw(RawTicketLock::starting_at(u32::MAX - 1), 0);
        for expected in 1..=4 {
            *mutex.try_lock().expect("free") += 1;
            *mutex.lock() += 1;
            assert_eq!(*mutex.lock(), 2 * expected);
            assert!(!mutex.is_locked());
        }
    }

    #[test]
    fn try_lock() {
        let mutex = TicketMutex::new(());
        let guard = mutex.try_lock().expect("free lock");
        assert!(mutex.is_locked());
        assert!(mutex.try_lock().is_none());
        thread::scope(|s| {
            s.spawn(|| assert!(mutex.try_lock().is_none(), "held by another thread"));
        });
        drop(guard);
        assert!(!mutex.is_locked());
        assert!(mutex.try_lock().is_some());
    }

    #[test]
    fn try_lock_does_not_jump_the_queue() {
        let mutex = TicketMutex::new(Vec::new());
        // SAFETY: `raw` is only used to read the counters, never to lock or unlock.
        let raw = unsafe { mutex.raw() };
        let held = mutex.lock();
        thread::scope(|s| {
            s.spawn(|| mutex.lock().push("waiter"));
            while raw.contenders() < 2 {
                thread::yield_now();
            }
            assert!(mutex.try_lock().is_none(), "a waiter is queued");
            drop(held);
        });
        assert_eq!(*mutex.lock(), ["waiter"]);
    }

    #[test]
    fn serves_in_arrival_order() {
        const WAITERS: usize = 8;
        let mutex = TicketMutex::new(Vec::new());
        // SAFETY: `raw` is only used to read the counters, never to lock or unlock.
        let raw = unsafe { mutex.raw() };
        let held = mutex.lock();
        thread::scope(|s| {
            for i in 0..WAITERS {
                let mutex = &mutex;
                s.spawn(move || mutex.lock().push(i));
                // Let waiter `i` draw its ticket before the next thread starts: arrival order
                // is then 0, 1, 2, ... whatever the OS scheduler does afterwards.
                while raw.contenders() as usize != i + 2 {
                    thread::yield_now();
                }
            }
            drop(held);
        });
        assert_eq!(mutex.into_inner(), (0..WAITERS).collect::<Vec<_>>());
    }

    #[test]
    fn contenders_counts_holder_and_waiters() {
        let raw = RawTicketLock::new();
        assert_eq!(raw.contenders(), 0);
        raw.lock();
        assert_eq!(raw.contenders(), 1);
        // SAFETY: locked just above on this thread.
        unsafe { raw.unlock() };
        assert_eq!(raw.contenders(), 0);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Fairness is a liveness property loom cannot check; mutual exclusion it can. At most two
    //! threads block in a model; see `sync::loom_models` for why.
    use super::*;
    use crate::sync::loom_models;

    #[test]
    fn excludes() {
        loom::model(|| loom_models::mutex(RawTicketLock::new, 2, 0));
    }

    #[test]
    fn excludes_with_try_lock() {
        loom::model(|| loom_models::mutex(RawTicketLock::new, 1, 2));
    }

    #[test]
    fn excludes_across_wrap_around() {
        loom::model(|| loom_models::mutex(|| RawTicketLock::starting_at(u32::MAX), 2, 0));
    }
}
