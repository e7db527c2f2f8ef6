//! Test-and-test-and-set spin locks: the mutex [`RawSpinMutex`] and the writer-preferring
//! reader-writer lock [`RawSpinRwLock`], used through `lock_api` as [`SpinMutex`] and
//! [`SpinRwLock`].
//!
//! # Memory ordering
//!
//! Both locks follow one pattern: the atomic operation that takes the lock is `Acquire`, the
//! one that gives it back is `Release`, everything else is `Relaxed`. That is enough: a `Release`
//! store (or RMW) followed by an `Acquire` load that reads its value makes everything the
//! releasing CPU did in its critical section happen-before everything the acquiring CPU does in
//! its own. The `Relaxed` loads only decide *when* to try; whoever wins still does so with an
//! `Acquire` RMW, and a stale `Relaxed` value only makes that RMW fail. No `SeqCst` is needed
//! because each lock is a single atomic word: there is no second location whose order relative
//! to it another CPU could observe inconsistently.

use lock_api::{GuardSend, RawMutex, RawRwLock, RawRwLockDowngrade};

use super::backoff::Backoff;
use super::primitives::{
    AtomicBool, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

/// A spin lock providing mutual exclusion; use it as [`SpinMutex`].
///
/// Test-and-test-and-set: a CPU tries to take the lock with one compare-and-swap, and if that
/// fails it waits with plain loads, backing off exponentially (up to a cap) between them, and only
/// tries the CAS again once the lock looks free. Waiting on loads keeps the lock's cache line
/// shared among the waiters instead of bouncing it between them in exclusive state, which a CAS
/// (even a failed one) would do; the backoff spreads out the stampede when the lock is released.
///
/// Not fair: a CPU that just released the lock, or that happens to be closer to the cache line,
/// can take it again ahead of CPUs that have waited longer. Use [`RawTicketLock`] where that
/// matters.
///
/// [`RawTicketLock`]: super::RawTicketLock
#[derive(Debug)]
pub struct RawSpinMutex {
    locked: AtomicBool,
}

impl RawSpinMutex {
    const_fn_unless_loom! {
        /// An unlocked lock (the same as [`RawMutex::INIT`], which loom builds cannot use).
        pub fn new() -> Self {
            RawSpinMutex { locked: AtomicBool::new(false) }
        }
    }
}

impl Default for RawSpinMutex {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `locked` goes false -> true only through a compare-and-swap, which at most one CPU can
// win while it is true, so `lock`/`try_lock` succeed for one holder at a time; it goes back to
// false only in `unlock`, which the caller promises is called by the holder. `Acquire` on
// success and `Release` on unlock order the critical sections (see the module docs). Unlocking
// from another thread than the one that locked is fine, hence `GuardSend`.
unsafe impl RawMutex for RawSpinMutex {
    #[cfg(not(loom))]
    const INIT: Self = Self::new();
    /// Loom's atomics cannot be created in a constant: build with
    /// `lock_api::Mutex::from_raw(RawSpinMutex::new(), value)` under loom.
    #[cfg(loom)]
    const INIT: Self = panic!("loom: use RawSpinMutex::new()");

    type GuardMarker = GuardSend;

    #[inline]
    fn lock(&self) {
        // Uncontended fast path: one CAS.
        if self.try_lock_once() {
            return;
        }
        self.lock_contended();
    }

    #[inline]
    fn try_lock(&self) -> bool {
        // Look before the CAS: a CPU polling `try_lock` on a held lock then only reads the line.
        !self.locked.load(Relaxed) && self.try_lock_once()
    }

    /// # Safety
    ///
    /// The caller holds the lock (`lock_api`'s contract for `RawMutex::unlock`).
    #[inline]
    unsafe fn unlock(&self) {
        debug_assert!(
            self.locked.load(Relaxed),
            "unlocking an unlocked RawSpinMutex"
        );
        self.locked.store(false, Release);
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.locked.load(Relaxed)
    }
}

impl RawSpinMutex {
    /// One attempt. A strong CAS: a spurious failure would send an uncontended `lock` down the
    /// slow path.
    #[inline]
    fn try_lock_once(&self) -> bool {
        self.locked
            .compare_exchange(false, true, Acquire, Relaxed)
            .is_ok()
    }

    #[cold]
    fn lock_contended(&self) {
        let mut backoff = Backoff::new();
        loop {
            // Wait until the lock looks free, reading only.
            while self.locked.load(Relaxed) {
                backoff.spin();
            }
            // Weak CAS: in a retry loop a spurious failure costs one more round.
            if self
                .locked
                .compare_exchange_weak(false, true, Acquire, Relaxed)
                .is_ok()
            {
                return;
            }
            // Another CPU took it first: more of us are racing, so back off before looking again.
            backoff.spin();
        }
    }
}

/// A mutex built on [`RawSpinMutex`]. `SpinMutex::new` is `const`, for `static`s.
pub type SpinMutex<T> = lock_api::Mutex<RawSpinMutex, T>;
/// The guard of a [`SpinMutex`]: the lock is held until it drops.
pub type SpinMutexGuard<'a, T> = lock_api::MutexGuard<'a, RawSpinMutex, T>;

/// Set while a writer holds the lock (bit 0).
const WRITER: u64 = 1;
/// One waiting writer; bits 1..32 count the writers waiting for the lock.
const WAITING_WRITER: u64 = 1 << 1;
/// All the waiting-writer bits.
const WAITING_MASK: u64 = 0xFFFF_FFFE;
/// One reader; bits 32..64 count the readers holding the lock.
const READER: u64 = 1 << 32;
/// All the reader bits.
const READER_MASK: u64 = 0xFFFF_FFFF_0000_0000;

/// A writer-preferring reader-writer spin lock; use it as [`SpinRwLock`].
///
/// One 64-bit word holds the whole state: a writer-holds bit, the number of writers waiting and
/// the number of readers holding the lock. A reader gets in only while no writer holds the lock
/// *or waits for it*; a writer that cannot get in at once registers as waiting, which stops new
/// readers, and takes the lock when the readers already inside have left. So writers cannot
/// starve; readers can, if writers keep arriving, which suits data written rarely.
///
/// Among writers there is no order: whichever sees the lock free first takes it.
///
/// Read locks do not nest: a CPU holding a read lock that asks for it again while a writer
/// waits queues behind that writer, which waits for the first read lock to go: deadlock.
///
/// Every change to the word is a read-modify-write, so a writer's `Acquire` CAS synchronizes with
/// the `Release` unlocks of *all* the readers that left before it, not only the last one: an RMW
/// continues the release sequence of the stores before it.
#[derive(Debug)]
pub struct RawSpinRwLock {
    state: AtomicU64,
}

impl RawSpinRwLock {
    const_fn_unless_loom! {
        /// An unlocked lock (the same as [`RawRwLock::INIT`], which loom builds cannot use).
        pub fn new() -> Self {
            RawSpinRwLock { state: AtomicU64::new(0) }
        }
    }
}

impl Default for RawSpinRwLock {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every transition of `state` is a single RMW on one word. A reader is added only by a
// CAS from a value with `WRITER` clear, and `WRITER` is set only by a CAS from a value with
// `WRITER` clear and no readers, so while a writer holds the lock there are no readers and no
// other writer, and while readers hold it there is no writer. Only holders remove themselves
// (the caller's promise for the unlock functions). Orderings: see the type's and module's docs.
unsafe impl RawRwLock for RawSpinRwLock {
    #[cfg(not(loom))]
    const INIT: Self = Self::new();
    /// Loom's atomics cannot be created in a constant: build with
    /// `lock_api::RwLock::from_raw(RawSpinRwLock::new(), value)` under loom.
    #[cfg(loom)]
    const INIT: Self = panic!("loom: use RawSpinRwLock::new()");

    type GuardMarker = GuardSend;

    fn lock_shared(&self) {
        let mut backoff = Backoff::new();
        loop {
            let state = self.state.load(Relaxed);
            if state & (WRITER | WAITING_MASK) == 0 {
                let new = Self::add_reader(state);
                if self
                    .state
                    .compare_exchange_weak(state, new, Acquire, Relaxed)
                    .is_ok()
                {
                    return;
                }
            }
            backoff.spin();
        }
    }

    fn try_lock_shared(&self) -> bool {
        let mut state = self.state.load(Relaxed);
        // Retry only while the lock stays available: a failure then means another reader (or a
        // writer registering) changed the word, not that we must wait.
        while state & (WRITER | WAITING_MASK) == 0 {
            let new = Self::add_reader(state);
            match self
                .state
                .compare_exchange_weak(state, new, Acquire, Relaxed)
            {
                Ok(_) => return true,
                Err(now) => state = now,
            }
        }
        false
    }

    /// # Safety
    ///
    /// The caller holds a shared lock (`lock_api`'s contract for `RawRwLock::unlock_shared`).
    #[inline]
    unsafe fn unlock_shared(&self) {
        let before = self.state.fetch_sub(READER, Release);
        debug_assert!(before & READER_MASK != 0, "unlock_shared without readers");
    }

    fn lock_exclusive(&self) {
        if self.try_lock_exclusive() {
            return;
        }
        // Register as waiting: from now on no new reader gets in. `Relaxed`: this publishes no
        // data, and as an RMW it does not break the release sequence readers' unlocks head.
        self.state.fetch_add(WAITING_WRITER, Relaxed);
        let mut backoff = Backoff::new();
        loop {
            let state = self.state.load(Relaxed);
            if state & (WRITER | READER_MASK) == 0 {
                // Take the lock and withdraw our registration in the same step.
                let new = (state - WAITING_WRITER) | WRITER;
                if self
                    .state
                    .compare_exchange_weak(state, new, Acquire, Relaxed)
                    .is_ok()
                {
                    return;
                }
            }
            backoff.spin();
        }
    }

    fn try_lock_exclusive(&self) -> bool {
        let mut state = self.state.load(Relaxed);
        while state & (WRITER | READER_MASK) == 0 {
            match self
                .state
                .compare_exchange_weak(state, state | WRITER, Acquire, Relaxed)
            {
                Ok(_) => return true,
                Err(now) => state = now,
            }
        }
        false
    }

    /// # Safety
    ///
    /// The caller holds the exclusive lock (`lock_api`'s contract for
    /// `RawRwLock::unlock_exclusive`).
    #[inline]
    unsafe fn unlock_exclusive(&self) {
        // Not a plain store of 0: the waiting-writer count must survive.
        let before = self.state.fetch_and(!WRITER, Release);
        debug_assert!(before & WRITER != 0, "unlock_exclusive without a writer");
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.state.load(Relaxed) & (WRITER | READER_MASK) != 0
    }

    #[inline]
    fn is_locked_exclusive(&self) -> bool {
        self.state.load(Relaxed) & WRITER != 0
    }
}

// SAFETY: turns the writer bit into one reader in a single RMW, so no other writer or reader can
// get in between; `Release` publishes the writes made under the exclusive lock to readers that
// come in afterwards.
unsafe impl RawRwLockDowngrade for RawSpinRwLock {
    /// # Safety
    ///
    /// The caller holds the exclusive lock (`lock_api`'s contract for
    /// `RawRwLockDowngrade::downgrade`).
    #[inline]
    unsafe fn downgrade(&self) {
        // While the writer holds the lock the reader count is 0, so this cannot overflow; it
        // clears `WRITER` and adds `READER`.
        let before = self.state.fetch_add(READER - WRITER, Release);
        debug_assert!(before & WRITER != 0, "downgrade without a writer");
    }
}

impl RawSpinRwLock {
    /// `state` with one more reader. Readers are the top bits, so too many would carry out of
    /// the word, which would make the lock look free: refuse instead. (2^32 readers means
    /// leaked guards, never 1024 CPUs.)
    #[inline]
    fn add_reader(state: u64) -> u64 {
        state
            .checked_add(READER)
            .expect("RawSpinRwLock: too many readers")
    }
}

/// A reader-writer lock built on [`RawSpinRwLock`]. `SpinRwLock::new` is `const`, for `static`s.
pub type SpinRwLock<T> = lock_api::RwLock<RawSpinRwLock, T>;
/// A shared guard of a [`SpinRwLock`].
pub type SpinRwLockReadGuard<'a, T> = lock_api::RwLockReadGuard<'a, RawSpinRwLock, T>;
/// The exclusive guard of a [`SpinRwLock`].
pub type SpinRwLockWriteGuard<'a, T> = lock_api::RwLockWriteGuard<'a, RawSpinRwLock, T>;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool as StdAtomicBool, Ordering as StdOrdering};
    use std::thread;

    const THREADS: usize = 4;
    const ITERS: usize = 10_000;

    static STATIC_MUTEX: SpinMutex<u32> = SpinMutex::new(7);
    static STATIC_RWLOCK: SpinRwLock<u32> = SpinRwLock::new(7);

    #[test]
    fn statics_work() {
        *STATIC_MUTEX.lock() += 1;
        assert_eq!(*STATIC_MUTEX.lock(), 8);
        *STATIC_RWLOCK.write() += 1;
        assert_eq!(*STATIC_RWLOCK.read(), 8);
    }

    #[test]
    fn mutex_threads_reach_exact_total() {
        let counter = SpinMutex::new(0usize);
        thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..ITERS {
                        // A read, then a write: lost updates would show if two threads overlapped.
                        let mut guard = counter.lock();
                        let seen = *guard;
                        *guard = seen + 1;
                    }
                });
            }
        });
        assert_eq!(counter.into_inner(), THREADS * ITERS);
    }

    #[test]
    fn mutex_try_lock() {
        let mutex = SpinMutex::new(());
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
    fn mutex_guard_can_be_released_on_another_thread() {
        let mutex = SpinMutex::new(1);
        let guard = mutex.lock();
        thread::scope(|s| {
            s.spawn(move || drop(guard));
        });
        assert_eq!(*mutex.try_lock().expect("released by the other thread"), 1);
    }

    #[test]
    fn rwlock_readers_share() {
        let lock = SpinRwLock::new(5);
        let first = lock.read();
        let second = lock.try_read().expect("a second reader gets in");
        thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(
                    *lock.try_read().expect("readers on other threads get in"),
                    5
                );
                assert!(
                    lock.try_write().is_none(),
                    "no writer while readers hold it"
                );
            });
        });
        assert!(lock.is_locked() && !lock.is_locked_exclusive());
        drop((first, second));
        assert!(!lock.is_locked());
        assert!(lock.try_write().is_some());
    }

    #[test]
    fn rwlock_writer_is_exclusive() {
        let lock = SpinRwLock::new(5);
        let mut writer = lock.write();
        *writer += 1;
        assert!(lock.is_locked_exclusive());
        assert!(lock.try_read().is_none());
        assert!(lock.try_write().is_none());
        thread::scope(|s| {
            s.spawn(|| {
                assert!(lock.try_read().is_none());
                assert!(lock.try_write().is_none());
            });
        });
        drop(writer);
        assert_eq!(*lock.try_read().expect("free again"), 6);
    }

    #[test]
    fn rwlock_waiting_writer_blocks_new_readers() {
        let lock = SpinRwLock::new(0);
        let wrote = StdAtomicBool::new(false);
        let reader = lock.read();
        thread::scope(|s| {
            s.spawn(|| {
                *lock.write() += 1;
                wrote.store(true, StdOrdering::SeqCst);
            });
            // The writer cannot get in past `reader`; once it has registered, new readers are
            // turned away even though only readers hold the lock.
            while lock.try_read().is_some() {
                thread::yield_now();
            }
            assert!(!wrote.load(StdOrdering::SeqCst));
            drop(reader);
        });
        assert!(wrote.load(StdOrdering::SeqCst));
        assert_eq!(*lock.try_read().expect("writer gone"), 1);
    }

    #[test]
    fn rwlock_downgrade() {
        let lock = SpinRwLock::new(1);
        let mut writer = lock.write();
        *writer = 2;
        let reader = SpinRwLockWriteGuard::downgrade(writer);
        assert_eq!(*reader, 2);
        assert_eq!(
            *lock
                .try_read()
                .expect("readers alongside the downgraded guard"),
            2
        );
        assert!(lock.try_write().is_none());
        drop(reader);
        assert!(lock.try_write().is_some());
    }

    #[test]
    fn rwlock_threads_see_consistent_data() {
        // Writers keep the two halves equal; readers check they never see them differ.
        let lock = SpinRwLock::new((0usize, 0usize));
        thread::scope(|s| {
            for _ in 0..THREADS / 2 {
                s.spawn(|| {
                    for _ in 0..ITERS {
                        let mut guard = lock.write();
                        guard.0 += 1;
                        guard.1 = guard.0;
                    }
                });
                s.spawn(|| {
                    for _ in 0..ITERS {
                        let guard = lock.read();
                        assert_eq!(guard.0, guard.1);
                    }
                });
            }
        });
        assert_eq!(
            lock.into_inner(),
            (THREADS / 2 * ITERS, THREADS / 2 * ITERS)
        );
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! At most two threads block in a model; see `sync::loom_models` for why.
    use super::*;
    use crate::sync::loom_models::{self, Guarded};
    use loom::thread;

    #[test]
    fn mutex_excludes() {
        loom::model(|| loom_models::mutex(RawSpinMutex::new, 2, 0));
    }

    #[test]
    fn mutex_excludes_with_try_lock() {
        loom::model(|| loom_models::mutex(RawSpinMutex::new, 1, 2));
    }

    /// The check checks something: a lock whose unlock is `Relaxed` must be caught.
    #[test]
    #[should_panic]
    fn loom_catches_a_relaxed_unlock() {
        struct Broken(AtomicBool);
        // SAFETY: deliberately wrong (the unlock does not release); only used to see that loom
        // notices.
        unsafe impl RawMutex for Broken {
            const INIT: Self = panic!();
            type GuardMarker = GuardSend;
            fn lock(&self) {
                while self
                    .0
                    .compare_exchange(false, true, Acquire, Relaxed)
                    .is_err()
                {
                    crate::sync::primitives::spin_hint();
                }
            }
            fn try_lock(&self) -> bool {
                self.0
                    .compare_exchange(false, true, Acquire, Relaxed)
                    .is_ok()
            }
            unsafe fn unlock(&self) {
                self.0.store(false, Relaxed);
            }
        }
        loom::model(|| loom_models::mutex(|| Broken(AtomicBool::new(false)), 2, 0));
    }

    /// How a model thread uses the rwlock.
    #[derive(Clone, Copy)]
    enum Use {
        Write,
        Read,
        TryWrite,
        TryRead,
    }

    type TestRwLock = lock_api::RwLock<RawSpinRwLock, ()>;

    /// Uses the lock as `use_` says; returns how many writes it made. Readers check they never
    /// overlap a write (loom would report the access) and see at most `max` writes.
    fn run(shared: &Guarded<TestRwLock>, use_: Use, max: usize) -> usize {
        match use_ {
            Use::Write => {
                let _guard = shared.lock.write();
                shared.bump();
                1
            }
            Use::TryWrite => match shared.lock.try_write() {
                Some(_guard) => {
                    shared.bump();
                    1
                }
                None => 0,
            },
            Use::Read => {
                let _guard = shared.lock.read();
                assert!(shared.read() <= max);
                0
            }
            Use::TryRead => {
                if let Some(_guard) = shared.lock.try_read() {
                    assert!(shared.read() <= max);
                }
                0
            }
        }
    }

    /// One thread per entry of `uses`, the first on the main thread; checks the total.
    fn rwlock(uses: &[Use]) {
        let blocking = uses
            .iter()
            .filter(|u| matches!(u, Use::Write | Use::Read))
            .count();
        assert!(blocking == 1 || uses.len() <= 2, "see sync::loom_models");
        let shared = Guarded::new(lock_api::RwLock::from_raw(RawSpinRwLock::new(), ()));
        let max = uses.len();
        let threads: Vec<_> = uses[1..]
            .iter()
            .map(|&use_| {
                let shared = shared.clone();
                thread::spawn(move || run(&shared, use_, max))
            })
            .collect();
        let mut writes = run(&shared, uses[0], max);
        writes += threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum::<usize>();
        assert_eq!(shared.read(), writes);
        assert!(!shared.lock.is_locked());
    }

    #[test]
    fn rwlock_writer_excludes_reader() {
        loom::model(|| rwlock(&[Use::Write, Use::Read]));
    }

    #[test]
    fn rwlock_writers_exclude_each_other() {
        loom::model(|| rwlock(&[Use::Write, Use::Write]));
    }

    #[test]
    fn rwlock_writer_excludes_two_readers() {
        loom::model(|| rwlock(&[Use::Write, Use::TryRead, Use::TryRead]));
    }

    #[test]
    fn rwlock_reader_excludes_writers() {
        loom::model(|| rwlock(&[Use::Read, Use::TryWrite, Use::TryRead]));
    }

    #[test]
    fn rwlock_downgrade_publishes() {
        loom::model(|| {
            let shared = Guarded::new(lock_api::RwLock::from_raw(RawSpinRwLock::new(), ()));
            let writer = {
                let shared = shared.clone();
                thread::spawn(move || {
                    let guard = shared.lock.write();
                    shared.bump();
                    let _reader = lock_api::RwLockWriteGuard::downgrade(guard);
                    assert_eq!(shared.read(), 1);
                })
            };
            {
                let _guard = shared.lock.read();
                assert!(shared.read() <= 1);
            }
            writer.join().unwrap();
        });
    }
}
