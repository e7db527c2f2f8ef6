//! The atomics and hints the library's concurrent code is written against: `core`'s normally,
//! `loom`'s when built with `--cfg loom`, so the same code is model-checked on the host
//! (`RUSTFLAGS="--cfg loom" cargo test -p multicore --release -- loom`).

#[cfg(loom)]
pub use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

#[cfg(not(loom))]
pub use core::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

/// Tells the CPU (or loom's scheduler) that this thread is spinning.
///
/// In host unit tests the "CPUs" are OS threads that the host may deschedule while they hold
/// a lock, and a waiter spinning with PAUSE would burn its whole time slice (more threads than
/// cores made a 40 000-round lock test take minutes): there it yields to the OS scheduler.
#[inline]
pub fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(all(test, not(loom)))]
    std::thread::yield_now();
    #[cfg(not(any(test, loom)))]
    core::hint::spin_loop();
}

/// `UnsafeCell` with loom's checked access API (`with`, `with_mut`) in both builds.
#[cfg(loom)]
pub use loom::cell::UnsafeCell;

/// `UnsafeCell` with loom's checked access API (`with`, `with_mut`) in both builds.
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        UnsafeCell(core::cell::UnsafeCell::new(value))
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

#[cfg(not(loom))]
impl<T: ?Sized> UnsafeCell<T> {
    /// Calls `f` with a shared raw pointer to the value.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Calls `f` with a mutable raw pointer to the value.
    #[inline]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
