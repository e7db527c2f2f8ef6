//! A global allocator for a hosted program: the program's own allocator on the BSP, per-AP
//! arenas on the APs.
//!
//! Why: the host's allocator (a C library's `malloc` over the host kernel's memory calls) was
//! written for one CPU: its locks compile to nothing, and growing it is a system call. An AP
//! must never enter it. So allocations on an AP come from that AP's arena (the library's
//! [`PerCpuHeap`], no lock on the fast path), and frees go back by address: a block of an
//! arena returns to its arena from any CPU; a block of the program's allocator is freed by it
//! on the BSP; if an AP drops it (a scheduler job made by main and run on an AP), it waits in a
//! list threaded through the block until the BSP's next allocation frees it: entering the host
//! allocator from an AP could corrupt it. A block under 16 bytes cannot hold its place in the
//! list and is leaked (counted in [`HostedHeap::foreign_frees_on_aps`]).
//!
//! ```ignore
//! #[global_allocator]
//! static HEAP: multicore::hosted::HostedHeap<std::alloc::System> =
//!     multicore::hosted::HostedHeap::new(std::alloc::System);
//! ```

use core::alloc::{GlobalAlloc, Layout};
use core::mem::{align_of, size_of};
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

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
    /// Blocks of the program's allocator freed on an AP (a scheduler job made on the BSP and
    /// run on an AP), kept here until the BSP frees them: an AP may not call the program's
    /// allocator. A list threaded through the blocks themselves; APs push, the BSP takes all.
    deferred: AtomicPtr<Deferred>,
}

/// What a deferred block holds while it waits for the BSP: 16 bytes, so that any block of 16
/// bytes or more can hold it (the alignment's log2 in the top bits of the size).
struct Deferred {
    next: *mut Deferred,
    size_and_align: usize,
}

const ALIGN_SHIFT: u32 = usize::BITS - 6;

impl Deferred {
    fn pack(layout: Layout) -> Option<usize> {
        (layout.size() >> ALIGN_SHIFT == 0)
            .then(|| layout.size() | (layout.align().trailing_zeros() as usize) << ALIGN_SHIFT)
    }

    fn layout(&self) -> Layout {
        let size = self.size_and_align & ((1 << ALIGN_SHIFT) - 1);
        let align = 1usize << (self.size_and_align >> ALIGN_SHIFT);
        Layout::from_size_align(size, align).expect("packed from a valid layout")
    }
}

impl<F> HostedHeap<F> {
    /// Wraps the program's allocator; the AP arenas are set up by `hosted::start_cpus`.
    pub const fn new(fallback: F) -> Self {
        HostedHeap {
            fallback,
            arenas: PerCpuHeap::new(),
            foreign_frees: AtomicU64::new(0),
            deferred: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Blocks of the program's allocator that an AP freed and that were leaked: too small to
    /// hold their own place in the list of blocks the BSP frees later.
    pub fn foreign_frees_on_aps(&self) -> u64 {
        self.foreign_frees.load(Ordering::Relaxed)
    }

    /// An AP frees a block of the program's allocator: into the list for the BSP.
    fn defer(&self, ptr: *mut u8, layout: Layout) {
        let packed = Deferred::pack(layout);
        let Some(size_and_align) = packed.filter(|_| {
            layout.size() >= size_of::<Deferred>() && layout.align() >= align_of::<Deferred>()
        }) else {
            self.foreign_frees.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let node = ptr as *mut Deferred;
        let mut head = self.deferred.load(Ordering::Relaxed);
        loop {
            // SAFETY: the block is the caller's to free (dealloc's contract), big and aligned
            // enough for a Deferred (checked above), and no one else uses it any more.
            unsafe {
                node.write(Deferred {
                    next: head,
                    size_and_align,
                })
            };
            match self.deferred.compare_exchange_weak(
                head,
                node,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }
}

impl<F: GlobalAlloc> HostedHeap<F> {
    /// On the BSP: frees what the APs left in the list. One consumer takes the whole list at
    /// once, so the pushes' compare-and-swap has no ABA to fear.
    fn free_deferred(&self) {
        if self.deferred.load(Ordering::Relaxed).is_null() {
            return;
        }
        let mut node = self.deferred.swap(core::ptr::null_mut(), Ordering::Acquire);
        while !node.is_null() {
            // SAFETY: every node was written by `defer` into a block of the program's
            // allocator with that layout, published by the release CAS (acquired above).
            let deferred = unsafe { node.read() };
            let (next, layout) = (deferred.next, deferred.layout());
            // SAFETY: the block came from the program's allocator with `layout`; on the BSP.
            unsafe { self.fallback.dealloc(node as *mut u8, layout) };
            node = next;
        }
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
            self.free_deferred();
            // SAFETY: forwarded to the program's allocator, on the BSP.
            unsafe { self.fallback.alloc(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.arenas.pool_of(ptr).is_some() {
            // SAFETY: the block came from the arenas with this layout.
            unsafe { self.arenas.dealloc(ptr, layout) }
        } else if current_ap().is_some() {
            self.defer(ptr, layout);
        } else {
            self.free_deferred();
            // SAFETY: the block came from the program's allocator, freed on the BSP.
            unsafe { self.fallback.dealloc(ptr, layout) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The system allocator, remembering what it was asked to free.
    struct Recording(Mutex<Vec<(usize, Layout)>>);

    // SAFETY: forwards to the system allocator.
    unsafe impl GlobalAlloc for Recording {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded.
            unsafe { std::alloc::System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            self.0.lock().unwrap().push((ptr as usize, layout));
            // SAFETY: forwarded.
            unsafe { std::alloc::System.dealloc(ptr, layout) }
        }
    }

    #[test]
    fn blocks_freed_on_an_ap_are_freed_by_the_bsp_later_with_their_layout() {
        let heap = HostedHeap::new(Recording(Mutex::new(Vec::new())));
        let layouts = [
            Layout::from_size_align(16, 8).unwrap(),
            Layout::from_size_align(100, 16).unwrap(),
            Layout::from_size_align(4096, 4096).unwrap(),
        ];
        // SAFETY: fresh blocks of these layouts, each handed to `defer` once.
        let blocks: Vec<usize> = layouts
            .iter()
            .map(|&l| unsafe { heap.fallback.alloc(l) } as usize)
            .collect();
        for (&b, &l) in blocks.iter().zip(&layouts) {
            heap.defer(b as *mut u8, l);
        }
        // A block too small for the list is leaked and counted.
        let tiny = Layout::from_size_align(8, 8).unwrap();
        // SAFETY: a fresh block, leaked on purpose.
        heap.defer(unsafe { heap.fallback.alloc(tiny) }, tiny);
        assert!(heap.fallback.0.lock().unwrap().is_empty());
        heap.free_deferred();
        let mut freed = heap.fallback.0.lock().unwrap().clone();
        freed.sort_by_key(|&(p, _)| p);
        let mut want: Vec<_> = blocks.into_iter().zip(layouts).collect();
        want.sort_by_key(|&(p, _)| p);
        assert_eq!(freed, want);
        assert_eq!(heap.foreign_frees_on_aps(), 1);
        assert!(heap.deferred.load(Ordering::Relaxed).is_null());
    }
}
