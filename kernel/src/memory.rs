//! Memory for the bring-up: a bump allocator over the free RAM after the image.
//!
//! The demo kernel never frees what it gives the CPUs (stacks, per-CPU data live as long as
//! the CPUs), so a bump pointer is all it needs here; a real heap comes with the runtime.

use bootinfo::{BootInfo, MemoryKind};
use core::ptr::NonNull;
use multicore::boot::Zeroable;
use spin::Mutex;

/// The end of the identity map entry.S builds.
const MAPPED_LIMIT: u64 = 4 << 30;
/// Memory at or above the image end, below `end`, not yet handed out.
struct Arena {
    next: u64,
    end: u64,
}

static ARENA: Mutex<Arena> = Mutex::new(Arena { next: 0, end: 0 });

/// Why there is no memory to allocate from.
#[derive(Debug, Clone, Copy)]
pub struct NoFreeMemory;

/// Takes the usable RAM region that holds the image, after the image and after any boot
/// structure the loader put behind it (QEMU's multiboot loader places its info there).
/// Returns the range handed to the allocator.
pub fn init(boot: &BootInfo) -> Result<(u64, u64), NoFreeMemory> {
    let image_end = (&raw const crate::boot::__image_end) as u64;
    let region = boot
        .memory_map()
        .iter()
        .find(|r| {
            r.kind == MemoryKind::Usable && r.range.base < image_end && image_end <= r.range.end()
        })
        .ok_or(NoFreeMemory)?;
    let mut start = image_end;
    for used in boot.occupied() {
        if used.end() > start && used.base < region.range.end() && used.base >= 0x10_0000 {
            start = used.end();
        }
    }
    let start = start.next_multiple_of(4096);
    let end = region.range.end().min(MAPPED_LIMIT) & !0xFFF;
    if start >= end {
        return Err(NoFreeMemory);
    }
    *ARENA.lock() = Arena { next: start, end };
    Ok((start, end))
}

/// Bytes not handed out yet (after 4 KiB alignment).
pub fn remaining() -> usize {
    let arena = ARENA.lock();
    (arena.end - arena.next.next_multiple_of(4096)) as usize
}

/// Zeroed memory that is never freed; `None` when the region is used up.
pub fn alloc_zeroed(size: usize, align: usize) -> Option<NonNull<u8>> {
    let ptr = alloc_uninit(size, align)?;
    // SAFETY: alloc_uninit handed out [ptr, ptr + size) to us alone.
    unsafe { core::ptr::write_bytes(ptr.as_ptr(), 0, size) };
    Some(ptr)
}

/// `len` zeroed values that are never freed; `None` when the region is used up.
pub fn alloc_zeroed_slice<T: Zeroable>(len: usize) -> Option<&'static mut [T]> {
    let ptr = alloc_zeroed(
        core::mem::size_of::<T>().checked_mul(len)?,
        core::mem::align_of::<T>(),
    )?;
    // SAFETY: fresh zeroed memory of len Ts, aligned for T, handed out once and never freed;
    // all-zero is a valid T (Zeroable).
    Some(unsafe { core::slice::from_raw_parts_mut(ptr.as_ptr().cast::<T>(), len) })
}

/// Memory that is never freed, not cleared: for the heap's regions, whose allocator needs no
/// zeroes (clearing hundreds of MiB costs seconds where ring-0 code is emulated).
pub fn alloc_uninit(size: usize, align: usize) -> Option<NonNull<u8>> {
    let mut arena = ARENA.lock();
    let base = arena.next.checked_next_multiple_of(align as u64)?;
    let end = base.checked_add(size as u64)?;
    if end > arena.end {
        return None;
    }
    // [base, end) is free RAM (init's memory map region), identity-mapped, and handed out
    // exactly once: the bump pointer moves past it under the lock.
    arena.next = end;
    NonNull::new(base as *mut u8)
}
