//! Guard pages: unmapping one 4 KiB page inside the boot identity map.
//!
//! entry.S maps 0..4 GiB with 2 MiB pages. To unmap one 4 KiB page, its 2 MiB page is first
//! split into a page table of 512 4 KiB entries with the same attributes (SDM Vol. 3A §5.5.4,
//! Tables 5-18 and 5-20), then the page's entry is cleared.

use x86_64::instructions::tlb;
use x86_64::VirtAddr;

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
/// PDE bit 7: the entry maps a 2 MiB page.
const HUGE: u64 = 1 << 7;
/// Flag bits a 2 MiB PDE and a 4 KiB PTE share (P, R/W, U/S, PWT, PCD, A, D; G; NX). Bit 7 is
/// PS in the PDE but PAT in a PTE, and bit 12 is PAT in the PDE: neither is used here.
const SHARED_FLAGS: u64 = 0x7F | 1 << 8 | 1 << 63;

/// Makes the 4 KiB page at `addr` (identity-mapped, below 4 GiB) not present. Must run before
/// other CPUs use the boot page tables (no TLB shootdown is done).
pub fn unmap_page(addr: u64) -> bool {
    if addr >= 4 << 30 || !addr.is_multiple_of(4096) {
        return false;
    }
    let pd_index = (addr >> 21) as usize;
    // SAFETY: boot_pd is the static array of 2048 PDEs built by entry.S; only the BSP changes
    // it, before any AP runs (documented contract), so this access is exclusive.
    let pde = unsafe { &mut crate::boot::boot_pd[pd_index] };
    if *pde & PRESENT == 0 {
        return false;
    }
    if *pde & HUGE != 0 {
        let Some(table) = crate::memory::alloc_zeroed(4096, 4096) else {
            return false;
        };
        let table = table.as_ptr() as *mut u64;
        let base = *pde & 0x000F_FFFF_FFE0_0000;
        let flags = *pde & SHARED_FLAGS;
        for i in 0..512u64 {
            // SAFETY: `table` is a fresh 4 KiB, 4 KiB-aligned allocation: 512 entries.
            unsafe { table.add(i as usize).write((base + i * 4096) | flags) };
        }
        *pde = table as u64 | PRESENT | WRITABLE | (*pde & (1 << 63));
    }
    let table = (*pde & 0x000F_FFFF_FFFF_F000) as *mut u64;
    let pt_index = ((addr >> 12) & 511) as usize;
    // SAFETY: the PDE points to a page table this module made (identity-mapped memory).
    unsafe { *table.add(pt_index) &= !PRESENT };
    tlb::flush(VirtAddr::new(addr));
    true
}
