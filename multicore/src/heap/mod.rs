//! The kernel heap: one arena per CPU in front of a shared pool, as a [`GlobalAlloc`].
//!
//! [`PerCpuHeap`] gives each CPU its own arena (a [`talc`] allocator over its own slice of
//! memory), so the common allocation takes no lock and touches no cache line another CPU
//! writes. A block freed on another CPU goes back to its owner through a lock-free
//! [`remote_free::RemoteFreeList`]; requests that are large, that the arena cannot satisfy, or
//! that come from a CPU without an arena go to a shared pool behind a lock.
//!
//! ```text
//!   alloc on CPU i ──(irqs off)── drain i's remote frees ── arena i ──full/large──► shared pool
//!   free of arena j's block ──on CPU j──► arena j
//!                           ──elsewhere─► j's remote-free list (drained by j's next alloc)
//!   free of a shared block ──► shared pool
//! ```
//!
//! [`GlobalAlloc`]: core::alloc::GlobalAlloc

#[cfg(not(loom))]
mod per_cpu;
pub mod remote_free;

#[cfg(not(loom))]
pub use per_cpu::{ArenaStats, PerCpuHeap, Pool, DEFAULT_MAX_CPUS, MIN_ARENA_SIZE};

/// Which CPU is running the caller, for [`PerCpuHeap`] to pick the arena.
///
/// The kernel implements it by reading its GS-based per-CPU block; host tests use a
/// thread-local, with std threads playing the CPUs.
///
/// # Safety
/// The heap lets the context that reports index `i` use arena `i` without a lock, with
/// interrupts off on its CPU. So, among the contexts that use the same heap at the same time,
/// no two may report the same index, and a context's index must not change while it runs with
/// interrupts off (on the kernel: no migration between CPUs with interrupts off, which holds
/// since nothing preempts it). NMI handlers and other contexts that interrupts-off does not
/// exclude must not allocate, or must report `None`.
pub unsafe trait CurrentCpu {
    /// The index of the CPU running now, or `None` before the runtime set it up on this CPU
    /// (then the shared pool serves its requests).
    fn current() -> Option<usize>;
}
