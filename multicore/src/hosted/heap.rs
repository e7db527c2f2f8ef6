//! A global allocator for a hosted program: the program's own allocator on the BSP, per-AP
//! arenas on the APs.
//!
//! Why: the host's allocator (a C library's `malloc` over the host kernel's memory calls) was
//! written for one CPU: its locks compile to nothing, and growing it is a system call. An AP
//! must never enter it. So allocations on an AP come from that AP's arena (the library's
//! [`PerCpuHeap`], no lock on the fast path), and frees go back by address: a block of an
//! arena returns to its arena from any CPU; a block of the program's allocator is freed by it
//! on the BSP, and *leaked* if an AP drops it (counted in [`HostedHeap::foreign_frees_on_aps`]):
//! entering the host allocator from an AP could corrupt it, leaking cannot.
//!
//! ```ignore
//! #[global_allocator]
//! static HEAP: multicore::hosted::HostedHeap<std::alloc::System> =
//!     multicore::hosted::HostedHeap::new(std::alloc::System);
//! ```

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicU64, Ordering};

use super::ap::current_ap;
use crate::heap::{CurrentCpu, PerCpuHeap};

/// The hosted AP running, for the per-CPU arenas (none on the BSP).
pub struct HostedCpu;

// SAFETY: each hosted AP's GS base points at its own `cpu_local` block (set in its first Rust
// instruction, before any of the program's code runs there), so no two CPUs report the same
// index; the BSP reports none. A
// hosted AP runs with interrupts off and is never preempted, so the index cannot change under
// an allocation.
unsafe impl CurrentCpu for HostedCpu {
    fn current() -> Option<usize> {
        current_ap().map(|i| i as usize)
    }
}

/// The program's allocator `F` on the BSP, per-AP arenas on the APs.
pub struct HostedHeap<F> {
    fallback: F,
    arenas: PerCpuHeap<HostedCpu>,
    foreign_frees: AtomicU64,
}

impl<F> HostedHeap<F> {
    /// Wraps the program's allocator; the AP arenas are set up by `hosted::start_cpus`.
    pub const fn new(fallback: F) -> Self {
        HostedHeap {
            fallback,
            arenas: PerCpuHeap::new(),
            foreign_frees: AtomicU64::new(0),
        }
    }

    /// Blocks of the program's allocator that an AP freed, and that were leaked instead.
    pub fn foreign_frees_on_aps(&self) -> u64 {
        self.foreign_frees.load(Ordering::Relaxed)
    }
}

/// What `hosted::start_cpus` needs of a [`HostedHeap`], whatever its fallback.
pub trait ApHeap: Sync {
    /// Gives the APs their arenas: `cpus` arenas of `arena_size` bytes at `arenas` (index 0,
    /// the BSP's, is unused).
    ///
    /// # Safety
    /// As [`PerCpuHeap::init`]: the memory is the heap's alone, forever; called once.
    unsafe fn init_arenas(&self, arenas: *mut u8, arena_size: usize, cpus: usize);
}

impl<F: GlobalAlloc + Sync> ApHeap for HostedHeap<F> {
    unsafe fn init_arenas(&self, arenas: *mut u8, arena_size: usize, cpus: usize) {
        // SAFETY: forwarded contract; no shared pool: an AP whose arena is full gets null.
        unsafe {
            self.arenas
                .init(arenas, arena_size, cpus, core::ptr::null_mut(), 0)
        };
    }
}

// SAFETY: every block comes from exactly one of the two allocators and goes back to the one
// it came from (decided by address, `pool_of`), or is leaked; both allocators are sound.
unsafe impl<F: GlobalAlloc> GlobalAlloc for HostedHeap<F> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if current_ap().is_some() {
            // SAFETY: forwarded; the arenas serve this AP.
            unsafe { self.arenas.alloc(layout) }
        } else {
            // SAFETY: forwarded to the program's allocator, on the BSP.
            unsafe { self.fallback.alloc(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.arenas.pool_of(ptr).is_some() {
            // SAFETY: the block came from the arenas with this layout.
            unsafe { self.arenas.dealloc(ptr, layout) }
        } else if current_ap().is_some() {
            self.foreign_frees.fetch_add(1, Ordering::Relaxed);
        } else {
            // SAFETY: the block came from the program's allocator, freed on the BSP.
            unsafe { self.fallback.dealloc(ptr, layout) }
        }
    }
}
