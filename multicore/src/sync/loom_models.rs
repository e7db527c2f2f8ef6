//! Loom models shared by the locks' `loom_tests`.
//!
//! The data a lock protects is a plain counter in a loom `UnsafeCell`: loom reports any two
//! accesses to it that the lock failed to order, and the final count catches lost updates.
//!
//! A model has two threads that block in `lock`, or one that does and others that only
//! `try_lock`. Loom cannot model a spin-wait as "blocked until the word changes": with two
//! threads spinning while a third holds the lock, it explores ever longer schedules in which the
//! two spinners take turns and the holder never runs, until a path exceeds its length limit.
//! With at most one spinner at a time every schedule is finite, and `try_lock` still adds a
//! third thread to race against.

use lock_api::RawMutex;
use loom::sync::Arc;
use loom::thread;

use super::primitives::UnsafeCell;

/// A counter meant to be touched only under `lock`.
pub(super) struct Guarded<L> {
    /// The lock under test.
    pub(super) lock: L,
    value: UnsafeCell<usize>,
}

// SAFETY: `value` is only accessed under `lock`, or after every other thread has been joined;
// that is exactly what the models check.
unsafe impl<L: Sync> Sync for Guarded<L> {}

impl<L> Guarded<L> {
    pub(super) fn new(lock: L) -> Arc<Self> {
        Arc::new(Guarded {
            lock,
            value: UnsafeCell::new(0),
        })
    }

    /// Adds one to the counter. The caller holds `lock` exclusively.
    pub(super) fn bump(&self) {
        // SAFETY: the caller holds the lock exclusively (loom checks that it really excludes).
        self.value.with_mut(|v| unsafe { *v += 1 });
    }

    /// Reads the counter. The caller holds `lock` (shared suffices), or is alone.
    pub(super) fn read(&self) -> usize {
        // SAFETY: as for `bump`, but reads may overlap with reads.
        self.value.with(|v| unsafe { *v })
    }
}

/// Runs `blocking` threads that `lock` (the main thread being one) and `trying` threads that
/// `try_lock` once, each adding one under the lock; checks the total. Two blocking threads
/// leave no room for a third (see the module docs).
pub(super) fn mutex<R>(new_raw: fn() -> R, blocking: usize, trying: usize)
where
    R: RawMutex + Send + Sync + 'static,
{
    assert!(
        blocking == 1 || (blocking == 2 && trying == 0),
        "see the module docs"
    );
    let shared = Guarded::new(lock_api::Mutex::from_raw(new_raw(), ()));
    let mut threads = Vec::new();
    for _ in 1..blocking {
        let shared = shared.clone();
        threads.push(thread::spawn(move || {
            let _guard = shared.lock.lock();
            shared.bump();
            true
        }));
    }
    for _ in 0..trying {
        let shared = shared.clone();
        threads.push(thread::spawn(move || match shared.lock.try_lock() {
            Some(_guard) => {
                shared.bump();
                true
            }
            None => false,
        }));
    }
    {
        let _guard = shared.lock.lock();
        shared.bump();
    }
    let done = 1 + threads
        .into_iter()
        .map(|t| usize::from(t.join().unwrap()))
        .sum::<usize>();
    assert_eq!(shared.read(), done);
    assert!(!shared.lock.is_locked());
}
