//! Write-once values: [`Once`] (initialised by an explicit call) and [`Lazy`] (initialised on
//! first use).
//!
//! Any CPU may be the one to initialise: the first caller runs the initialiser, callers that
//! arrive while it runs spin until it finishes, and everyone then shares the same value.
//!
//! Written here rather than re-exporting `spin::Once`/`spin::Lazy` (which would do the same job)
//! so that it is built on [`primitives`](super::primitives) like the locks: under `--cfg loom`
//! the model checker then sees the state word and the value cell, and checks that every reader
//! of the value is ordered after its initialisation.
//!
//! # Memory ordering
//!
//! The initialiser writes the value, then stores `COMPLETE` with `Release`; every path that
//! reads the value first loads `COMPLETE` with `Acquire`. Reading that store makes the write of
//! the value happen-before the read. Claiming the right to initialise (`INCOMPLETE` to
//! `RUNNING`) publishes nothing and orders nothing, so it is `Relaxed`: one CAS on one word
//! already lets only one caller win.

use core::fmt;
use core::mem::MaybeUninit;
use core::ops::Deref;

use super::primitives::{
    spin_hint, AtomicU32,
    Ordering::{Acquire, Relaxed, Release},
    UnsafeCell,
};

/// Nobody has started initialising.
const INCOMPLETE: u32 = 0;
/// A caller is running the initialiser; others wait.
const RUNNING: u32 = 1;
/// The value is written and may be read.
const COMPLETE: u32 = 2;
/// The initialiser panicked (host tests only: the kernel aborts on panic); callers panic too
/// rather than wait forever.
const POISONED: u32 = 3;

/// A value written once, by whichever CPU calls [`Once::call_once`] first, then shared.
///
/// An initialiser must not call back into the same `Once`: it would wait for itself forever.
/// For the same reason an interrupt handler must not use a `Once` (or [`Lazy`]) that the code
/// it interrupted might be initialising: initialise such values before enabling interrupts.
pub struct Once<T> {
    state: AtomicU32,
    /// Written once, by the caller that moved `state` to `RUNNING`; read only after `state`
    /// is seen `COMPLETE`.
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: sharing a `Once` hands `&T` to every thread (so `T: Sync`) and lets any of them run
// the initialiser, whose `T` then lives in the `Once` and is dropped wherever the `Once` is
// (so `T: Send`). Access to `value` is synchronized through `state` (module docs).
unsafe impl<T: Send + Sync> Sync for Once<T> {}

impl<T> Once<T> {
    const_fn_unless_loom! {
        /// An uninitialised `Once`.
        pub fn new() -> Self {
            Once { state: AtomicU32::new(INCOMPLETE), value: UnsafeCell::new(MaybeUninit::uninit()) }
        }
    }

    const_fn_unless_loom! {
        /// A `Once` already holding `value`.
        pub fn initialized(value: T) -> Self {
            Once { state: AtomicU32::new(COMPLETE), value: UnsafeCell::new(MaybeUninit::new(value)) }
        }
    }

    /// Returns the value, first running `init` to create it if no caller has started to yet;
    /// if another caller is running its initialiser, waits for it to finish. Either way every
    /// caller gets the same value, and at most one `init` ever runs.
    ///
    /// # Panics
    ///
    /// If an initialiser panicked (only possible where panics unwind, i.e. host tests).
    #[inline]
    pub fn call_once<F: FnOnce() -> T>(&self, init: F) -> &T {
        match self.get() {
            Some(value) => value,
            None => self.call_once_slow(init),
        }
    }

    #[cold]
    fn call_once_slow<F: FnOnce() -> T>(&self, init: F) -> &T {
        if self
            .state
            .compare_exchange(INCOMPLETE, RUNNING, Relaxed, Relaxed)
            .is_err()
        {
            return self.wait();
        }
        // If `init` unwinds, mark the `Once` poisoned so the callers waiting for it panic too.
        let poison = PoisonOnUnwind(&self.state);
        let value = init();
        // SAFETY: our CAS above made us the only caller allowed to write `value`, and nobody
        // reads it before `state` is `COMPLETE`.
        self.value.with_mut(|slot| unsafe { (*slot).write(value) });
        core::mem::forget(poison);
        self.state.store(COMPLETE, Release);
        // SAFETY: written just above, by this thread.
        unsafe { self.get_unchecked() }
    }

    /// The value, if initialised; `None` if not yet (or still running).
    #[inline]
    pub fn get(&self) -> Option<&T> {
        if self.state.load(Acquire) == COMPLETE {
            // SAFETY: `COMPLETE` read with `Acquire`: the value is written and visible.
            Some(unsafe { self.get_unchecked() })
        } else {
            None
        }
    }

    /// Waits (spinning) until some caller has initialised the value, then returns it. For CPUs
    /// that need the value but must not be the ones to create it.
    ///
    /// # Panics
    ///
    /// If the initialiser panicked (only possible where panics unwind, i.e. host tests).
    pub fn wait(&self) -> &T {
        loop {
            match self.state.load(Acquire) {
                // SAFETY: `COMPLETE` read with `Acquire`: the value is written and visible.
                COMPLETE => return unsafe { self.get_unchecked() },
                POISONED => panic!("Once: the initialiser panicked"),
                _ => spin_hint(),
            }
        }
    }

    /// Whether the value has been initialised.
    #[inline]
    pub fn is_completed(&self) -> bool {
        self.state.load(Acquire) == COMPLETE
    }

    /// The value, if initialised, through exclusive access (no synchronization needed).
    pub fn get_mut(&mut self) -> Option<&mut T> {
        if self.state.load(Relaxed) == COMPLETE {
            // SAFETY: `COMPLETE`, and `&mut self` rules out every other access.
            Some(
                self.value
                    .with_mut(|slot| unsafe { (*slot).assume_init_mut() }),
            )
        } else {
            None
        }
    }

    /// Takes the value out, if initialised.
    pub fn into_inner(mut self) -> Option<T> {
        // Leaves `state` `INCOMPLETE`, so dropping `self` then drops nothing.
        self.take()
    }

    /// Moves the value out and marks the `Once` uninitialised.
    fn take(&mut self) -> Option<T> {
        if self.state.load(Relaxed) != COMPLETE {
            return None;
        }
        self.state.store(INCOMPLETE, Relaxed);
        // SAFETY: it was `COMPLETE`, and with `state` now `INCOMPLETE` nothing reads or drops
        // the value again; `&mut self` rules out concurrent access.
        Some(
            self.value
                .with_mut(|slot| unsafe { (*slot).assume_init_read() }),
        )
    }

    /// # Safety
    ///
    /// `state` has been seen `COMPLETE` by this thread (with `Acquire` if another thread wrote
    /// it), so the value is initialised and visible.
    #[inline]
    unsafe fn get_unchecked(&self) -> &T {
        // SAFETY: the value is initialised (the caller's promise) and never written again while
        // `&self` lives, so a shared reference tied to `&self` stays valid.
        self.value.with(|slot| unsafe { (*slot).assume_init_ref() })
    }
}

impl<T> Default for Once<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for Once<T> {
    fn drop(&mut self) {
        drop(self.take());
    }
}

impl<T: fmt::Debug> fmt::Debug for Once<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.get() {
            Some(value) => f.debug_tuple("Once").field(value).finish(),
            None => f.write_str("Once(<uninitialized>)"),
        }
    }
}

/// Marks a `Once` poisoned if dropped, i.e. if its initialiser unwinds (forgotten otherwise).
struct PoisonOnUnwind<'a>(&'a AtomicU32);

impl Drop for PoisonOnUnwind<'_> {
    fn drop(&mut self) {
        // Nothing to publish: waiters only need to stop waiting.
        self.0.store(POISONED, Relaxed);
    }
}

/// A value created on first access by `F`, from whichever CPU gets there first; the others
/// wait for it. Usable in `static`s: `static TABLE: Lazy<Table> = Lazy::new(build_table);`.
pub struct Lazy<T, F = fn() -> T> {
    once: Once<T>,
    /// Taken (once) by the caller that runs the initialiser.
    init: UnsafeCell<Option<F>>,
}

// SAFETY: as for `Once<T>`, plus `F` is moved out of the `Lazy` and run on whichever thread
// initialises it (so `F: Send`); `init` is touched only by that one thread (see `force`).
unsafe impl<T: Send + Sync, F: Send> Sync for Lazy<T, F> {}

impl<T, F: FnOnce() -> T> Lazy<T, F> {
    const_fn_unless_loom! {
        /// A `Lazy` that will create its value with `init` on first access.
        pub fn new(init: F) -> Self {
            Lazy { once: Once::new(), init: UnsafeCell::new(Some(init)) }
        }
    }

    /// Returns the value, creating it first if needed (`Lazy::force(&x)`, like `*x`).
    ///
    /// # Panics
    ///
    /// If the initialiser panicked, now or before (only possible where panics unwind).
    pub fn force(this: &Self) -> &T {
        this.once.call_once(|| {
            // SAFETY: `Once` runs this closure at most once, on one thread, so nothing else
            // touches `init` meanwhile (or ever after).
            let init = this.init.with_mut(|slot| unsafe { (*slot).take() });
            init.expect("Lazy: the initialiser panicked")()
        })
    }

    /// The value, if it has been created.
    pub fn get(this: &Self) -> Option<&T> {
        this.once.get()
    }
}

impl<T, F: FnOnce() -> T> Deref for Lazy<T, F> {
    type Target = T;

    fn deref(&self) -> &T {
        Lazy::force(self)
    }
}

impl<T: Default> Default for Lazy<T> {
    fn default() -> Self {
        Lazy::new(T::default)
    }
}

impl<T: fmt::Debug, F> fmt::Debug for Lazy<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.once.get() {
            Some(value) => f.debug_tuple("Lazy").field(value).finish(),
            None => f.write_str("Lazy(<uninitialized>)"),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
    use std::sync::Barrier;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn runs_once_for_racing_callers() {
        const THREADS: usize = 4;
        let once = Once::new();
        let runs = StdAtomicUsize::new(0);
        let start = Barrier::new(THREADS);
        thread::scope(|s| {
            for i in 0..THREADS {
                let (once, runs, start) = (&once, &runs, &start);
                s.spawn(move || {
                    start.wait();
                    let value = once.call_once(|| {
                        runs.fetch_add(1, StdOrdering::Relaxed);
                        // Give the others time to arrive and wait.
                        thread::sleep(Duration::from_millis(20));
                        i
                    });
                    assert_eq!(once.get(), Some(value));
                    *value
                });
            }
        });
        assert_eq!(runs.load(StdOrdering::Relaxed), 1);
        assert!(once.is_completed());
    }

    #[test]
    fn waiters_get_the_value_initialised_elsewhere() {
        let once = Once::new();
        assert_eq!(once.get(), None);
        thread::scope(|s| {
            let waiter = s.spawn(|| *once.wait());
            thread::sleep(Duration::from_millis(10));
            assert_eq!(*once.call_once(|| 42), 42);
            assert_eq!(waiter.join().unwrap(), 42);
        });
        assert_eq!(*once.call_once(|| unreachable!("already initialised")), 42);
    }

    #[test]
    fn initialized_get_mut_into_inner() {
        let mut once = Once::initialized(String::from("a"));
        assert!(once.is_completed());
        once.get_mut().unwrap().push('b');
        assert_eq!(once.into_inner().as_deref(), Some("ab"));
        assert_eq!(Once::<String>::new().into_inner(), None);
    }

    #[test]
    fn drops_the_value_exactly_once() {
        struct Counted<'a>(&'a StdAtomicUsize);
        impl Drop for Counted<'_> {
            fn drop(&mut self) {
                self.0.fetch_add(1, StdOrdering::Relaxed);
            }
        }
        let drops = StdAtomicUsize::new(0);
        drop(Once::<Counted>::new());
        assert_eq!(drops.load(StdOrdering::Relaxed), 0);
        let once = Once::new();
        once.call_once(|| Counted(&drops));
        drop(once);
        assert_eq!(drops.load(StdOrdering::Relaxed), 1);
        let taken = Once::initialized(Counted(&drops)).into_inner();
        assert_eq!(drops.load(StdOrdering::Relaxed), 1);
        drop(taken);
        assert_eq!(drops.load(StdOrdering::Relaxed), 2);
    }

    #[test]
    fn a_panicking_initialiser_poisons() {
        let once = Once::<u32>::new();
        let first = catch_unwind(AssertUnwindSafe(|| {
            once.call_once(|| panic!("init failed"))
        }));
        assert!(first.is_err());
        assert!(!once.is_completed());
        let later = catch_unwind(AssertUnwindSafe(|| *once.call_once(|| 1)));
        assert!(
            later.is_err(),
            "later callers panic instead of waiting forever"
        );
    }

    static LAZY: Lazy<Vec<u32>> = Lazy::new(|| vec![1, 2, 3]);

    #[test]
    fn lazy_initialises_on_first_use() {
        let runs = StdAtomicUsize::new(0);
        let lazy = Lazy::new(|| {
            runs.fetch_add(1, StdOrdering::Relaxed);
            7
        });
        assert_eq!(Lazy::get(&lazy), None);
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| assert_eq!(*lazy, 7));
            }
        });
        assert_eq!(Lazy::get(&lazy), Some(&7));
        assert_eq!(runs.load(StdOrdering::Relaxed), 1);
        assert_eq!(LAZY.len(), 3);
        assert_eq!(*Lazy::force(&LAZY), [1, 2, 3]);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;
    use loom::thread;

    #[test]
    fn racing_callers_share_one_value() {
        loom::model(|| {
            let once = Arc::new(Once::new());
            let runs = Arc::new(AtomicUsize::new(0));
            let call = |once: &Once<usize>, runs: &AtomicUsize, mine: usize| {
                let value = *once.call_once(|| {
                    runs.fetch_add(1, Relaxed);
                    mine
                });
                assert!(value == 1 || value == 2);
                value
            };
            let other = {
                let (once, runs) = (once.clone(), runs.clone());
                thread::spawn(move || call(&once, &runs, 1))
            };
            let mine = call(&once, &runs, 2);
            assert_eq!(other.join().unwrap(), mine);
            assert_eq!(runs.load(Relaxed), 1);
        });
    }

    #[test]
    fn get_sees_a_complete_value_or_none() {
        loom::model(|| {
            let once = Arc::new(Once::new());
            let reader = {
                let once = once.clone();
                // The value cell is a loom cell: reading it without the initialiser's write
                // ordered before the read would be reported.
                thread::spawn(move || once.get().copied())
            };
            assert_eq!(*once.call_once(|| 5usize), 5);
            assert!(matches!(reader.join().unwrap(), None | Some(5)));
        });
    }

    #[test]
    fn wait_sees_the_value_initialised_elsewhere() {
        loom::model(|| {
            let once = Arc::new(Once::new());
            let writer = {
                let once = once.clone();
                thread::spawn(move || *once.call_once(|| 5usize))
            };
            assert_eq!(*once.wait(), 5);
            assert_eq!(writer.join().unwrap(), 5);
        });
    }

    #[test]
    fn lazy_forced_from_two_threads() {
        loom::model(|| {
            let lazy: Arc<Lazy<usize, _>> = Arc::new(Lazy::new(|| 9));
            let other = {
                let lazy = lazy.clone();
                thread::spawn(move || **lazy)
            };
            assert_eq!(**lazy, 9);
            assert_eq!(other.join().unwrap(), 9);
        });
    }
}
