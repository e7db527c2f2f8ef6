//! What the library needs from the kernel it runs in.
//!
//! The demo kernel is one host; a kernel whose `main()` already runs on one CPU is another.
//! The library asks for memory, a console, a view of physical memory and the low pages it may
//! borrow, and never assumes how the host laid out its address space.

use core::fmt;
use core::ptr::NonNull;

use crate::bootinfo::PhysRange;
use crate::phys::LinearMapping;

/// Physical memory below 1 MiB that the trampoline page may be taken from.
#[derive(Debug, Clone, Copy)]
pub struct LowMemory<'a> {
    /// Free RAM ranges (they may extend past 1 MiB; only the part below counts).
    pub free: &'a [PhysRange],
    /// Ranges inside `free` that are in use all the same (boot structures, the host's data).
    pub in_use: &'a [PhysRange],
}

/// Services the host kernel provides to the bring-up.
pub trait Host: Sync {
    /// Writes `args` to the console. Called from any CPU, possibly at the same time: the host
    /// serializes (one call's text is never interleaved with another's).
    fn print(&self, args: fmt::Arguments<'_>);

    /// Returns zeroed memory of `size` bytes aligned to `align` (a power of two ≤ 4096) that
    /// stays valid and unused by the host for as long as the CPUs run: AP stacks, `CpuData`,
    /// the CPU tables. `None` when memory is exhausted.
    fn alloc_zeroed(&self, size: usize, align: usize) -> Option<NonNull<u8>>;

    /// Makes the 4 KiB page at virtual address `addr` (from [`Host::alloc_zeroed`]) fault on any
    /// access, as a stack guard. Returns `false` if the host cannot (the stack then has no
    /// guard, and the bring-up says so).
    fn guard_page(&self, addr: u64) -> bool {
        let _ = addr;
        false
    }

    /// How physical memory is reached: firmware tables, the trampoline page and the xAPIC page
    /// (which must be mapped uncached) are accessed through it.
    fn phys(&self) -> LinearMapping;

    /// Physical address of the virtual address `virt` (memory from `alloc_zeroed`, statics and
    /// the BSP's stack), or `None` if unknown.
    fn virt_to_phys(&self, virt: u64) -> Option<u64>;

    /// Where the trampoline page may go (the host's word; pages the library sees in use are
    /// refused all the same, boot/live_pages.rs).
    fn low_memory(&self) -> LowMemory<'_>;

    /// The virtual range [`Host::alloc_zeroed`] hands memory out of, if it is one range: its
    /// pages below 1 MiB are never borrowed. Default: not known.
    fn library_memory(&self) -> Option<(u64, usize)> {
        None
    }

    /// Writes `args` after every other CPU has been stopped (a panic or fatal exception
    /// report): must not wait for a lock that a stopped CPU may hold. Default: [`Host::print`].
    fn print_after_stop(&self, args: fmt::Arguments<'_>) {
        self.print(args);
    }

    /// Ends the run after a fatal error, once the other CPUs are stopped (the demo kernel
    /// takes QEMU's failure exit). Default: halt this CPU for good.
    fn fatal_exit(&self) -> ! {
        super::park_this_cpu()
    }

    /// The page-table root APs load (below 4 GiB). Default: the BSP's CR3.
    fn page_table_root(&self) -> u64 {
        x86_64::registers::control::Cr3::read_raw()
            .0
            .start_address()
            .as_u64()
    }
}
