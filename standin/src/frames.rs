//! Physical page frames for the page tables and the program, handed out lowest first as on
//! Unikraft: the RAM of the multiboot memory map from 0x11000 to the end of low RAM (never the
//! EBDA or the BIOS areas), then from 1 MiB up, minus the host image and the initrd
//! (`standin_core::physmem`). The page-table root is the first frame, at 0x11000; page tables
//! and the program's heap (brk, mmap) fill the low pages above it, while its image and stack
//! go above 1 MiB ([`alloc_zeroed_high`]), as on Unikraft: low memory holds what a real
//! kernel's does and only the dead boot stack below it is free to borrow (lowmem.rs). Frames
//! given back by munmap are reused first.

use spin::Mutex;
use standin_core::layout::{MAX_PHYS, PHYS_OFFSET};
use standin_core::loader::{self, MemoryKind};
use standin_core::physmem::{self, FrameRam};
use standin_core::ranges::{Range, RangeSet, PAGE};

use crate::boot::BootInfo;
use crate::paging::phys_to_virt;

/// What a freed frame holds: allocator data reached through the direct map, as a kernel's
/// free lists are (the library under test must see that such a page is not free to borrow:
/// it holds a pointer to itself).
#[repr(C)]
struct FreeNode {
    /// The next freed frame's direct-map address, or `this` for the last one.
    next: u64,
    /// This frame's direct-map address.
    this: u64,
}

/// No frame left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfMemory;

struct Frames {
    /// Never handed out yet.
    fresh: FrameRam,
    /// Physical address of the last frame given back (0: none); each is a [`FreeNode`].
    freed_head: u64,
    /// Frames handed out and not given back.
    in_use: u64,
}

static FRAMES: Mutex<Frames> = Mutex::new(Frames {
    fresh: RangeSet::new(),
    freed_head: 0,
    in_use: 0,
});

/// Takes the usable RAM from the memory map (read through the boot identity map: call before
/// anything is allocated). Returns (total usable bytes, bytes for frames).
pub fn init(boot: &BootInfo) -> (u64, u64) {
    let total = boot
        .memory_map()
        .iter()
        .filter(|r| r.kind == MemoryKind::Usable)
        .map(|r| loader::range(r).len())
        .sum();
    let image = crate::boot::image();
    let initrd = boot.initrd.unwrap_or(Range::new(0, 0));
    let mut f = FRAMES.lock();
    f.fresh = physmem::frame_ram(
        boot.memory_map(),
        crate::firmware::ebda_base(),
        &[image, initrd],
    );
    (total, f.fresh.total())
}

/// The highest end of usable RAM, for sizing the direct map.
pub fn top_of_ram(boot: &BootInfo) -> u64 {
    boot.memory_map()
        .iter()
        .filter(|r| r.kind == MemoryKind::Usable)
        .map(|r| loader::range(r).end)
        .max()
        .unwrap_or(0)
        .min(MAX_PHYS)
}

/// A frame with unspecified contents.
pub fn alloc() -> Result<u64, OutOfMemory> {
    let mut f = FRAMES.lock();
    let frame = if f.freed_head != 0 {
        let frame = f.freed_head;
        // SAFETY: a freed frame is ours alone and starts with its FreeNode (written by `free`);
        // it is reachable through the current physical view.
        let node = unsafe { (phys_to_virt(frame) as *const FreeNode).read() };
        f.freed_head = if node.next == node.this {
            0
        } else {
            node.next - PHYS_OFFSET
        };
        frame
    } else {
        f.fresh.take_lowest_page().ok_or(OutOfMemory)?
    };
    f.in_use += 1;
    Ok(frame)
}

/// A frame filled with zeroes.
pub fn alloc_zeroed() -> Result<u64, OutOfMemory> {
    zeroed(alloc()?)
}

/// A zeroed frame from 1 MiB up, never reused from the freed list: for the program's image and
/// stack, which Unikraft keeps above 1 MiB (measured: image at 0x50f000, stack at 0x476000)
/// while its page tables and the program's heap fill low memory.
pub fn alloc_zeroed_high() -> Result<u64, OutOfMemory> {
    let mut f = FRAMES.lock();
    // Usable RAM never spans 1 MiB (the BIOS areas lie below it), so the first range that ends
    // above 1 MiB starts there or later, and its first page comes off without a split.
    let range = *f
        .fresh
        .ranges()
        .iter()
        .find(|r| r.end > standin_core::layout::ONE_MIB)
        .ok_or(OutOfMemory)?;
    let frame = range.start.max(standin_core::layout::ONE_MIB);
    f.fresh
        .remove(Range::from_len(frame, PAGE))
        .map_err(|_| OutOfMemory)?;
    f.in_use += 1;
    drop(f);
    zeroed(frame)
}

fn zeroed(frame: u64) -> Result<u64, OutOfMemory> {
    // SAFETY: the frame was just handed to us alone, and the physical view maps it writable.
    unsafe { core::ptr::write_bytes(phys_to_virt(frame), 0, PAGE as usize) };
    Ok(frame)
}

/// Gives a frame back (it must come from `alloc` and no longer be mapped).
pub fn free(frame: u64) {
    let mut f = FRAMES.lock();
    let this = PHYS_OFFSET + frame;
    let next = if f.freed_head == 0 {
        this
    } else {
        PHYS_OFFSET + f.freed_head
    };
    // SAFETY: the caller unmapped the frame, so nothing else reads or writes it; its first
    // words link it into the freed list.
    unsafe { (phys_to_virt(frame) as *mut FreeNode).write(FreeNode { next, this }) };
    f.freed_head = frame;
    f.in_use -= 1;
}

/// Bytes handed out and not given back.
pub fn in_use_bytes() -> u64 {
    FRAMES.lock().in_use * PAGE
}
