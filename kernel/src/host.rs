//! The demo kernel as a `multicore` host: identity-mapped memory, COM1, the boot memory map.

use core::fmt;
use core::ptr::NonNull;

use bootinfo::{BootInfo, MemoryKind, MAX_MEMORY_REGIONS};
use multicore::boot::{Host, LowMemory};
use multicore::cpu_local::GsOwner;
use multicore::phys::{LinearMapping, PhysRange, PhysRead};

/// What the bring-up may use, taken from the boot information.
pub struct DemoHost {
    free: [PhysRange; MAX_MEMORY_REGIONS],
    free_count: usize,
    in_use: [PhysRange; 8],
    in_use_count: usize,
}

impl DemoHost {
    /// Collects the free RAM and the boot structures to keep clear of.
    pub fn new(boot: &BootInfo) -> DemoHost {
        let mut host = DemoHost {
            free: [PhysRange { base: 0, len: 0 }; MAX_MEMORY_REGIONS],
            free_count: 0,
            in_use: [PhysRange { base: 0, len: 0 }; 8],
            in_use_count: 0,
        };
        for region in boot
            .memory_map()
            .iter()
            .filter(|r| r.kind == MemoryKind::Usable)
        {
            host.free[host.free_count] = phys_range(region.range);
            host.free_count += 1;
        }
        for (slot, used) in host.in_use.iter_mut().zip(boot.occupied()) {
            *slot = phys_range(*used);
            host.in_use_count += 1;
        }
        host
    }
}

impl Host for DemoHost {
    fn print(&self, args: fmt::Arguments<'_>) {
        crate::console::print(args);
    }

    fn print_after_stop(&self, args: fmt::Arguments<'_>) {
        crate::console::print_after_stop(args);
    }

    fn fatal_exit(&self) -> ! {
        crate::exit::exit(crate::exit::ExitCode::Failure)
    }

    fn alloc_zeroed(&self, size: usize, align: usize) -> Option<NonNull<u8>> {
        crate::memory::alloc_zeroed(size, align)
    }

    fn guard_page(&self, addr: u64) -> bool {
        crate::paging::unmap_page(addr)
    }

    fn phys(&self) -> LinearMapping {
        identity()
    }

    fn virt_to_phys(&self, virt: u64) -> Option<u64> {
        (virt < 4 << 30).then_some(virt)
    }

    fn gs_owner(&self) -> GsOwner {
        // SAFETY: the demo kernel has no per-CPU scheme of its own and never touches GS base:
        // it is the library's on every CPU.
        unsafe { GsOwner::library() }
    }

    fn low_memory(&self) -> LowMemory<'_> {
        LowMemory {
            free: &self.free[..self.free_count],
            in_use: &self.in_use[..self.in_use_count],
        }
    }
}

/// The boot identity map of 0..4 GiB.
pub fn identity() -> LinearMapping {
    // SAFETY: entry.S identity-maps 0..4 GiB (the top GiB uncached for MMIO) for the kernel's
    // whole life; firmware tables and RAM read through it have no read side effects.
    unsafe { LinearMapping::new(0, 4 << 30) }
}

/// The library's name for a range the loader described.
fn phys_range(range: bootinfo::PhysRange) -> PhysRange {
    PhysRange {
        base: range.base,
        len: range.len,
    }
}

/// The loader's structures, read through the boot identity map.
pub struct LoaderMemory;

impl bootinfo::PhysRead for LoaderMemory {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), bootinfo::ReadError> {
        identity().read(pa, buf).map_err(|e| bootinfo::ReadError {
            addr: e.addr,
            len: e.len,
        })
    }
}
