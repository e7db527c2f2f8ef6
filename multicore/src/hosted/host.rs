//! The library's own [`Host`] for a hosted program: memory from the region the program handed
//! over, physical memory through the mapping it named, the low pages it vouched for, and the
//! hosted console. It never calls into the host kernel.

use core::fmt;
use core::ptr::NonNull;

use super::bump::Bump;
use super::console;
use crate::arch::x86_64::page_walk::translate;
use crate::boot::{Host, LowMemory};
use crate::phys::LinearMapping;
use crate::phys::PhysRange;

/// APs that reported a fault and halted.
pub(crate) static STOPPED_APS: core::sync::atomic::AtomicU32 =
    core::sync::atomic::AtomicU32::new(0);

/// Most low-memory ranges a hosted program may name.
pub const MAX_LOW_RANGES: usize = 16;

pub(crate) struct HostedHost {
    pub(crate) bump: Bump,
    phys: LinearMapping,
    free: [PhysRange; MAX_LOW_RANGES],
    free_count: usize,
    in_use: [PhysRange; MAX_LOW_RANGES],
    in_use_count: usize,
}

fn copy_ranges(from: &[PhysRange]) -> ([PhysRange; MAX_LOW_RANGES], usize) {
    let mut to = [PhysRange { base: 0, len: 0 }; MAX_LOW_RANGES];
    let n = from.len().min(MAX_LOW_RANGES);
    to[..n].copy_from_slice(&from[..n]);
    (to, n)
}

impl HostedHost {
    pub(crate) fn new(
        bump: Bump,
        phys: LinearMapping,
        free: &[PhysRange],
        in_use: &[PhysRange],
    ) -> HostedHost {
        let (free, free_count) = copy_ranges(free);
        let (in_use, in_use_count) = copy_ranges(in_use);
        HostedHost {
            bump,
            phys,
            free,
            free_count,
            in_use,
            in_use_count,
        }
    }
}

impl Host for HostedHost {
    fn print(&self, args: fmt::Arguments<'_>) {
        console::print(args);
    }

    fn print_after_stop(&self, args: fmt::Arguments<'_>) {
        console::print_unlocked(args);
    }

    fn alloc_zeroed(&self, size: usize, align: usize) -> Option<NonNull<u8>> {
        self.bump.alloc_zeroed(size, align)
    }

    fn phys(&self) -> LinearMapping {
        self.phys
    }

    /// Walks the running page tables (CR3) through the physical mapping.
    fn virt_to_phys(&self, virt: u64) -> Option<u64> {
        let root = x86_64::registers::control::Cr3::read_raw()
            .0
            .start_address()
            .as_u64();
        translate(root, virt, |pa| {
            let mut bytes = [0u8; 8];
            crate::phys::PhysRead::read(&self.phys, pa, &mut bytes).ok()?;
            Some(u64::from_le_bytes(bytes))
        })
    }

    fn library_memory(&self) -> Option<(u64, usize)> {
        Some(self.bump.region())
    }

    fn low_memory(&self) -> LowMemory<'_> {
        LowMemory {
            free: &self.free[..self.free_count],
            in_use: &self.in_use[..self.in_use_count],
        }
    }

    /// An AP that faults reports (already done when this runs), is counted, and halts; the BSP
    /// belongs to the host program and goes on.
    fn fatal_exit(&self) -> ! {
        STOPPED_APS.fetch_add(1, core::sync::atomic::Ordering::AcqRel);
        crate::boot::park_this_cpu()
    }
}
