//! A work-stealing scheduler for fork-join parallelism on every CPU that serves it.
//!
//! Each worker (a CPU; a thread in host tests) has a deque (`deque.rs`). Forked work goes on the
//! forking worker's own deque, newest at the bottom; the worker takes its own work back newest
//! first, idle workers steal oldest first from a random victim on (`registry.rs`). Work from
//! outside the workers goes through one injection queue. A worker with nothing to do looks a
//! few more times, then sleeps (`sleep.rs`: an idle CPU halts, an IPI wakes it); new work
//! wakes one sleeper, a finished job wakes the worker waiting for it. The protocol cannot lose
//! a wake-up, and a worker with work never waits (loom models in `loom_models.rs`).
//!
//! What a program uses, on a [`Registry`]:
//! - [`Registry::join`]: two closures, possibly in parallel, both free to borrow;
//! - [`Registry::scope`]: tasks that borrow from the caller, all done when it returns;
//! - [`Registry::spawn`]: a detached `'static` task and a [`JoinHandle`] for its result;
//! - [`Registry::for_each`], [`Registry::map_reduce`], [`Registry::for_each_chunk_mut`]:
//!   parallel loops over a range or a slice with a grain size;
//! - [`Registry::counters`]: per-worker tasks, steals, failed steals, sleeps and wake-ups.
//!
//! Where a CPU sleeps and how it is woken is the [`Platform`]'s business: the runtime's
//! (`rt`, HLT and IPIs) in a kernel, threads in the host tests.
//!
//! Panics: jobs do not unwind (the library's users build with `panic = "abort"`); a panic in a
//! job is the platform's panic path (in the demo kernel: every CPU stopped, one report).

mod abandon;
mod deque;
mod job;
mod join;
mod latch;
#[cfg(all(test, loom))]
mod loom_models;
mod parallel;
#[cfg(all(test, not(loom)))]
mod property_tests;
mod registry;
mod scope;
mod sleep;
mod spawn;
#[cfg(all(test, not(loom)))]
mod tests;

pub use abandon::TaskPanicked;
pub use deque::{Deque, Steal};
pub use job::{JobHeader, JobRef};
pub use registry::{Counters, Registry, DEQUE_CAPACITY};
pub use scope::Scope;
pub use sleep::Platform;
pub use spawn::JoinHandle;
