//! Physical page frames for the program and the page tables: the RAM of the multiboot memory
//! map from 1 MiB up, minus the host image and the initrd; frames given back by munmap are
//! reused first. Below 1 MiB the host takes nothing: that RAM is the program's (what
//! `STANDIN_LOWMEM_FREE` lists) or the host's fixed low data (lowmem.rs).

use spin::Mutex;
use standin_core::layout::ONE_MIB;
use standin_core::multiboot::MEMORY_AVAILABLE;
use standin_core::ranges::{Range, RangeSet, PAGE};

use crate::boot::BootInfo;
use crate::paging::phys_to_virt;

/// The most physical memory used: what one PML4 slot of the direct map covers.
const MAX_PHYS: u64 = 512 << 30;

/// No frame left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfMemory;

struct Frames {
    /// Never handed out yet.
    fresh: RangeSet<64>,
    /// Physical address of the last frame given back (0: none); each holds the next's address.
    freed_head: u64,
    /// Frames handed out and not given back.
    in_use: u64,
}

static FRAMES: Mutex<Frames> = Mutex::new(Frames {
    fresh: RangeSet::new(),
    freed_head: 0,
    in_use: 0,
});

/// Takes the usable RAM from the memory map. Returns (total usable bytes, bytes for frames).
pub fn init(boot: &BootInfo) -> (u64, u64) {
    let mut f = FRAMES.lock();
    let mut total = 0;
    for region in boot.memory_map() {
        if region.kind == MEMORY_AVAILABLE {
            total += region.range.len();
            // A full set drops the region: less memory, never memory that is not RAM.
            let _ = f.fresh.insert(region.range.pages_inside());
        }
    }
    f.fresh.clip(&Range::new(ONE_MIB, MAX_PHYS));
    let _ = f.fresh.remove(crate::boot::image());
    if let Some(initrd) = boot.initrd {
        let _ = f.fresh.remove(initrd.pages_covering());
    }
    (total, f.fresh.total())
}

/// The highest end of usable RAM, for sizing the direct map.
pub fn top_of_ram(boot: &BootInfo) -> u64 {
    boot.memory_map()
        .iter()
        .filter(|r| r.kind == MEMORY_AVAILABLE)
        .map(|r| r.range.end)
        .max()
        .unwrap_or(0)
        .min(MAX_PHYS)
}

/// A frame with unspecified contents.
pub fn alloc() -> Result<u64, OutOfMemory> {
    let mut f = FRAMES.lock();
    let frame = if f.freed_head != 0 {
        let frame = f.freed_head;
        // SAFETY: a freed frame is ours alone and holds the next freed frame's address in its
        // first word (written by `free`); it is reachable through the current physical view.
        f.freed_head = unsafe { (phys_to_virt(frame) as *const u64).read() };
        frame
    } else {
        let first = *f.fresh.ranges().first().ok_or(OutOfMemory)?;
        // Removing a range's first page never splits it, so the set cannot be full.
        let _ = f.fresh.remove(Range::from_len(first.start, PAGE));
        first.start
    };
    f.in_use += 1;
    Ok(frame)
}

/// A frame filled with zeroes.
pub fn alloc_zeroed() -> Result<u64, OutOfMemory> {
    let frame = alloc()?;
    // SAFETY: the frame was just handed to us alone, and the physical view maps it writable.
    unsafe { core::ptr::write_bytes(phys_to_virt(frame), 0, PAGE as usize) };
    Ok(frame)
}

/// Gives a frame back (it must come from `alloc` and no longer be mapped).
pub fn free(frame: u64) {
    let mut f = FRAMES.lock();
    // SAFETY: the caller unmapped the frame, so nothing else reads or writes it; its first word
    // links it into the freed list.
    unsafe { (phys_to_virt(frame) as *mut u64).write(f.freed_head) };
    f.freed_head = frame;
    f.in_use -= 1;
}

/// Bytes handed out and not given back.
pub fn in_use_bytes() -> u64 {
    FRAMES.lock().in_use * PAGE
}
