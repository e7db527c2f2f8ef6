//! Synchronization for code running on every CPU.
//!
//! Everything here spins: there is no scheduler to sleep on. All of it is written against
//! [`primitives`], so `RUSTFLAGS="--cfg loom" cargo test -p multicore --release --lib sync`
//! model-checks the same code the kernel runs.
//!
//! # Which lock
//!
//! | Lock | Use it for |
//! |------|------------|
//! | [`SpinMutex`] | The default: short critical sections, little contention. Cheapest when uncontended; unfair (a CPU can lose the race many times in a row). |
//! | [`TicketMutex`] | Locks many CPUs fight over (with up to 1024 CPUs, anything global on a hot path): strict FIFO, so no CPU starves and the wait is bounded by the queue ahead of it. Costs a second counter and hands over more slowly when a waiter is not running. |
//! | [`SpinRwLock`] | Data read often by many CPUs at once and written rarely. Writer-preferring: a waiting writer stops new readers, so writers never starve (readers can, under a constant stream of writers). |
//! | [`IrqSafeMutex`], [`IrqSafeTicketMutex`] | Anything an interrupt handler also locks. Interrupts are off on this CPU from before acquiring until after releasing. |
//! | [`Once`], [`Lazy`] | A value initialised once, by whichever CPU gets there first; the others wait for it. |
//!
//! # The interrupt rule
//!
//! **If an interrupt handler ever takes a lock, every acquisition of that lock, everywhere, must
//! go through an irq-safe lock.** Otherwise code holding it with interrupts on can be interrupted
//! on its own CPU by a handler that then spins forever on the lock its own CPU holds. One
//! non-irq-safe acquisition anywhere is enough for the deadlock, so the type (not each call
//! site) makes the choice: put such data in an [`IrqSafeMutex`].
//!
//! Two corollaries: irq-safe guards are released in the reverse order of acquisition (debug
//! builds assert it), and while holding one, never wait for another CPU to answer an interrupt
//! (an IPI, a cross-CPU call): that CPU may be spinning on this very lock with its interrupts
//! off.

/// Defines a constructor that is `const` except under `--cfg loom`, whose atomics and cells
/// cannot be built in a constant (they register with the model when created).
macro_rules! const_fn_unless_loom {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($args:tt)*) -> $ret:ty $body:block) => {
        #[cfg(not(loom))]
        $(#[$attr])*
        $vis const fn $name($($args)*) -> $ret $body

        #[cfg(loom)]
        $(#[$attr])*
        $vis fn $name($($args)*) -> $ret $body
    };
}

mod backoff;
pub mod irq_safe;
#[cfg(all(test, loom))]
mod loom_models;
pub mod once;
pub mod primitives;
pub mod spin;
pub mod ticket;

pub use irq_safe::{
    IrqSafeMutex, IrqSafeMutexGuard, IrqSafeTicketMutex, IrqSafeTicketMutexGuard, RawIrqSafe,
};
pub use once::{Lazy, Once};
pub use spin::{
    RawSpinMutex, RawSpinRwLock, SpinMutex, SpinMutexGuard, SpinRwLock, SpinRwLockReadGuard,
    SpinRwLockWriteGuard,
};
pub use ticket::{RawTicketLock, TicketMutex, TicketMutexGuard};
