//! The page tables the host and its program share (4-level paging, SDM Vol. 3A §5.5, entry
//! formats in Tables 5-15 to 5-20):
//!
//! - identity: the dead boot stack 0x1000..0x11000 RW+NX (4 KiB pages, as on Unikraft), the
//!   host image at 1 MiB (text RX, read-only data R+NX, data and bss RW+NX, the guard pages
//!   below the host's stacks left out); nothing else below 2 MiB: the frames in low memory
//!   (these tables among them, the root at 0x11000) are reached through the direct map only;
//! - every physical address p at `PHYS_OFFSET + p`, RW+NX, 1 GiB pages (2 MiB where the CPU
//!   has no 1 GiB pages), the fourth GiB (the MMIO hole: local APIC, I/O APIC) uncached;
//! - the program's pages in the lower half, 4 KiB each, made by the loader and by mmap/brk.
//!
//! Page tables live in frames from `frames` and are reached through the physical view: the
//! boot identity map until `init` switches CR3, the direct map after.

use core::sync::atomic::{AtomicU64, Ordering};

use standin_core::layout::{DEAD_BOOT_STACK, PHYS_OFFSET};
use standin_core::ranges::{Range, PAGE};
use x86_64::instructions::tlb;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::PhysFrame;
use x86_64::{PhysAddr, VirtAddr};

use crate::frames::{self, OutOfMemory};

/// Entry bits (SDM Vol. 3A Table 5-20, 4 KiB PTE; the same bits in the upper levels).
pub const PRESENT: u64 = 1 << 0;
/// R/W.
pub const WRITABLE: u64 = 1 << 1;
/// PWT: write-through.
const WRITE_THROUGH: u64 = 1 << 3;
/// PCD: cache disable.
const CACHE_DISABLE: u64 = 1 << 4;
/// PS in a PDPTE or PDE: the entry maps a 1 GiB or 2 MiB page.
const HUGE: u64 = 1 << 7;
/// XD: execute-disable (needs EFER.NXE, set by entry.S when CPUID offers NX).
pub const NO_EXECUTE: u64 = 1 << 63;
/// Bit 9, ignored by the CPU: a program page kept but made inaccessible (PROT_NONE); the
/// entry is not present yet still holds its frame.
pub const BACKED: u64 = 1 << 9;
/// Bits 51:12: the frame address.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Added to a physical address to reach it: 0 under entry.S's identity map, then PHYS_OFFSET.
static VIEW_OFFSET: AtomicU64 = AtomicU64::new(0);
/// NO_EXECUTE when the CPU has NX, else 0 (the bit is reserved without EFER.NXE).
static NX: AtomicU64 = AtomicU64::new(0);

/// Where the host reaches physical address `phys`.
pub fn phys_to_virt(phys: u64) -> *mut u8 {
    (phys + VIEW_OFFSET.load(Ordering::Relaxed)) as *mut u8
}

/// The execute-disable bit, or 0 on a CPU without NX.
pub fn nx() -> u64 {
    NX.load(Ordering::Relaxed)
}

/// Why a mapping could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// No frame for a page table.
    OutOfMemory,
    /// The page is mapped already.
    AlreadyMapped,
    /// A large page covers the address.
    InsideLargePage,
}

impl From<OutOfMemory> for MapError {
    fn from(_: OutOfMemory) -> Self {
        MapError::OutOfMemory
    }
}

fn entry_at(table: u64, index: usize) -> *mut u64 {
    (phys_to_virt(table) as *mut u64).wrapping_add(index)
}

fn index(virt: u64, shift: u32) -> usize {
    ((virt >> shift) & 511) as usize
}

fn current_root() -> u64 {
    Cr3::read().0.start_address().as_u64()
}

/// The 4 KiB-level entry for `virt` under `root`, making missing tables when `create`.
fn leaf_entry(root: u64, virt: u64, create: bool) -> Result<Option<*mut u64>, MapError> {
    let mut table = root;
    for shift in [39, 30, 21] {
        let entry = entry_at(table, index(virt, shift));
        // SAFETY: `table` is a page table of this address space (the root, or read from a
        // present entry), reachable through the physical view; host code runs on one CPU with
        // interrupts off, so nothing changes it meanwhile.
        let value = unsafe { entry.read() };
        if value & PRESENT == 0 {
            if !create {
                return Ok(None);
            }
            let fresh = frames::alloc_zeroed()?;
            // Upper levels allow everything; the leaf decides (SDM §5.11: rights combine).
            // SAFETY: as above; the new table is zeroed and owned by this entry from now on.
            unsafe { entry.write(fresh | PRESENT | WRITABLE) };
            table = fresh;
        } else if value & HUGE != 0 {
            return Err(MapError::InsideLargePage);
        } else {
            table = value & ADDR_MASK;
        }
    }
    Ok(Some(entry_at(table, index(virt, 12))))
}

fn map_in(root: u64, virt: u64, frame: u64, flags: u64) -> Result<(), MapError> {
    let entry = leaf_entry(root, virt, true)?.ok_or(MapError::OutOfMemory)?;
    // SAFETY: `entry` is the leaf entry for `virt` (see leaf_entry).
    unsafe {
        if entry.read() & (PRESENT | BACKED) != 0 {
            return Err(MapError::AlreadyMapped);
        }
        entry.write(frame | flags);
    }
    Ok(())
}

/// Maps the 4 KiB page at `virt` to `frame` with `flags` (PRESENT, WRITABLE, NO_EXECUTE, or
/// BACKED without PRESENT) in the current address space.
pub fn map(virt: u64, frame: u64, flags: u64) -> Result<(), MapError> {
    map_in(current_root(), virt, frame, flags)
}

/// The raw 4 KiB entry for `virt`, if its tables exist.
pub fn leaf(virt: u64) -> Option<u64> {
    let entry = leaf_entry(current_root(), virt, false).ok()??;
    // SAFETY: see leaf_entry.
    Some(unsafe { entry.read() })
}

/// Replaces the flags of the 4 KiB page at `virt` (keeping its frame); false if it has none.
pub fn set_flags(virt: u64, flags: u64) -> bool {
    let Ok(Some(entry)) = leaf_entry(current_root(), virt, false) else {
        return false;
    };
    // SAFETY: see leaf_entry; the frame address is kept, only rights change, then the TLB
    // entry is dropped.
    unsafe {
        let value = entry.read();
        if value & (PRESENT | BACKED) == 0 {
            return false;
        }
        entry.write((value & ADDR_MASK) | flags);
    }
    tlb::flush(VirtAddr::new(virt));
    true
}

/// Unmaps the 4 KiB page at `virt`; returns its frame if it had one.
pub fn unmap(virt: u64) -> Option<u64> {
    let entry = leaf_entry(current_root(), virt, false).ok()??;
    // SAFETY: see leaf_entry.
    let value = unsafe { entry.read() };
    if value & (PRESENT | BACKED) == 0 {
        return None;
    }
    // SAFETY: as above.
    unsafe { entry.write(0) };
    tlb::flush(VirtAddr::new(virt));
    Some(value & ADDR_MASK)
}

/// Where `virt` is mapped and whether it may be written: (physical address, writable).
/// Follows large pages; `None` when not present.
pub fn translate(virt: u64) -> Option<(u64, bool)> {
    let mut table = current_root();
    let mut writable = true;
    for shift in [39, 30, 21, 12] {
        // SAFETY: as in leaf_entry.
        let value = unsafe { entry_at(table, index(virt, shift)).read() };
        if value & PRESENT == 0 {
            return None;
        }
        writable &= value & WRITABLE != 0;
        if shift == 12 || value & HUGE != 0 {
            let size = 1u64 << shift;
            let base = value & ADDR_MASK & !(size - 1);
            return Some((base + (virt & (size - 1)), writable));
        }
        table = value & ADDR_MASK;
    }
    None
}

/// Builds the final page tables (layout at the top of this file), switches CR3 to them and
/// moves the physical view to the direct map. `ram_top`: the end of RAM, mapped at least to
/// 4 GiB. Returns the new CR3.
pub fn init(cpu_has_nx: bool, page_1g: bool, ram_top: u64) -> Result<u64, MapError> {
    if cpu_has_nx {
        NX.store(NO_EXECUTE, Ordering::Relaxed);
    }
    let nx = nx();
    let root = frames::alloc_zeroed()?;

    let mut page = DEAD_BOOT_STACK.start;
    while page < DEAD_BOOT_STACK.end {
        map_in(root, page, page, PRESENT | WRITABLE | nx)?;
        page += PAGE;
    }
    let image = crate::boot::image();
    // Linker-script symbols: only their addresses are taken.
    let text = Range::new(
        (&raw const crate::boot::__text_start) as u64,
        (&raw const crate::boot::__text_end) as u64,
    );
    let rodata_end = (&raw const crate::boot::__rodata_end) as u64;
    let mut page = image.start;
    while page < image.end {
        if crate::stacks::is_guard(page) {
            page += PAGE;
            continue;
        }
        let flags = if text.contains(page) {
            PRESENT
        } else if page < rodata_end {
            PRESENT | nx
        } else {
            PRESENT | WRITABLE | nx
        };
        map_in(root, page, page, flags)?;
        page += PAGE;
    }

    // The direct map: PML4 slot 511 (PHYS_OFFSET) -> one PDPT of 512 1-GiB slots.
    let gib = 1u64 << 30;
    let top = ram_top.max(4 * gib).next_multiple_of(gib).min(512 * gib);
    let pdpt = frames::alloc_zeroed()?;
    // SAFETY: `root` and `pdpt` are fresh zeroed tables reached through the physical view.
    unsafe { entry_at(root, index(PHYS_OFFSET, 39)).write(pdpt | PRESENT | WRITABLE) };
    let mut base = 0;
    while base < top {
        // The fourth GiB holds the MMIO hole on QEMU's machines: no caching there.
        let cache = if base == 3 * gib {
            CACHE_DISABLE | WRITE_THROUGH
        } else {
            0
        };
        let slot = entry_at(pdpt, index(PHYS_OFFSET + base, 30));
        if page_1g {
            // SAFETY: as above.
            unsafe { slot.write(base | PRESENT | WRITABLE | HUGE | cache | nx) };
        } else {
            let pd = frames::alloc_zeroed()?;
            for i in 0..512u64 {
                let phys = base + (i << 21);
                // SAFETY: `pd` is a fresh zeroed table.
                unsafe {
                    entry_at(pd, i as usize).write(phys | PRESENT | WRITABLE | HUGE | cache | nx)
                };
            }
            // SAFETY: as above.
            unsafe { slot.write(pd | PRESENT | WRITABLE) };
        }
        base += gib;
    }

    let frame = PhysFrame::containing_address(PhysAddr::new(root));
    // SAFETY: the new tables map everything the host runs on (image, boot stack in the bss) at
    // the same addresses as the boot tables, so execution continues (the guard pages are not
    // in use yet: no host stack runs before gdt and syscall set them up); the physical view
    // moves to the direct map right after, before any other access.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
    VIEW_OFFSET.store(PHYS_OFFSET, Ordering::Relaxed);
    Ok(root)
}
