//! The kernel's global allocator: the library's per-CPU heap over the RAM left after the
//! bring-up, found through the runtime's GS-based CPU index.

use multicore::heap::{CurrentCpu, PerCpuHeap};

/// Which CPU is running, for the heap: the runtime's index (none before a CPU joins).
pub struct RuntimeCpu;

// SAFETY: each CPU's GS base points at its own PerCpu block (or at none), so no two CPUs
// report the same index, and nothing preempts or migrates kernel code: an index cannot change
// while it runs with interrupts off. The NMI handler (stop path) does not allocate.
unsafe impl CurrentCpu for RuntimeCpu {
    fn current() -> Option<usize> {
        multicore::rt::percpu::current_index()
    }
}

#[global_allocator]
pub static HEAP: PerCpuHeap<RuntimeCpu> = PerCpuHeap::new();

/// Largest arena one CPU gets.
const MAX_ARENA: usize = 4 << 20;
/// Smallest useful arena.
const MIN_ARENA: usize = 64 << 10;

/// Splits the free memory: a quarter (at least 1 MiB) for the shared pool, the rest in equal
/// per-CPU arenas of at most 4 MiB. Returns (arena size, shared size).
pub fn init(cpus: usize) -> Result<(usize, usize), &'static str> {
    let free = crate::memory::remaining();
    let shared = (free / 4).max(1 << 20);
    let arena = ((free.saturating_sub(shared)) / cpus.max(1)).min(MAX_ARENA) & !0xFFF;
    if arena < MIN_ARENA {
        return Err("not enough memory for per-CPU heap arenas");
    }
    let arenas =
        crate::memory::alloc_uninit(arena * cpus, 4096).ok_or("out of memory for arenas")?;
    let pool =
        crate::memory::alloc_uninit(shared, 4096).ok_or("out of memory for the shared pool")?;
    // SAFETY: both regions are fresh, never-freed memory handed to the heap alone; init runs
    // once, on the BSP, before anything allocates.
    unsafe { HEAP.init(arenas.as_ptr(), arena, cpus, pool.as_ptr(), shared) };
    Ok((arena, shared))
}
