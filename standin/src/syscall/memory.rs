//! The program's memory beyond its image: the brk heap right after the image, anonymous
//! mmap()s in [MMAP_BASE, MMAP_END) (first fit among the ranges munmap() gave back, else
//! above everything handed out so far, so that allocation churn reuses addresses and page
//! tables), and the stack. Every page is backed by a
//! zeroed frame when mapped (no demand paging: the program, and later other CPUs it starts,
//! never fault on memory they were given). PROT_NONE pages keep their frame, not present.

use spin::Mutex;
use standin_core::layout::{BRK_MAX, MMAP_BASE, MMAP_END, USER_END, USER_MIN};
use standin_core::linux::errno::{EEXIST, EINVAL, ENODEV, ENOMEM};
use standin_core::linux::mman::{
    MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, PROT_EXEC, PROT_READ, PROT_WRITE,
};
use standin_core::ranges::{Range, RangeSet, PAGE};

use super::SysResult;
use crate::paging::{self, BACKED, PRESENT, WRITABLE};
use crate::{frames, user};

/// madvise(MADV_DONTNEED): the pages read as zero afterwards.
const MADV_DONTNEED: u64 = 4;

struct Space {
    /// The brk area's start (the end of the image).
    brk_start: u64,
    /// The current break.
    brk: u64,
    /// Everything in the mmap area from here up is free.
    mmap_next: u64,
    /// Ranges below `mmap_next` given back by munmap (a full set forgets ranges: addresses
    /// are plentiful).
    mmap_free: RangeSet<128>,
}

static SPACE: Mutex<Space> = Mutex::new(Space {
    brk_start: 0,
    brk: 0,
    mmap_next: MMAP_BASE,
    mmap_free: RangeSet::new(),
});

impl Space {
    /// Addresses for `size` bytes in the mmap area.
    fn take_mmap_range(&mut self, size: u64) -> Option<Range> {
        let reused = self
            .mmap_free
            .ranges()
            .iter()
            .find(|r| r.len() >= size)
            .map(|r| Range::from_len(r.start, size));
        if let Some(range) = reused {
            // Removing a prefix never splits a range: the set cannot be full.
            let _ = self.mmap_free.remove(range);
            return Some(range);
        }
        let end = self
            .mmap_next
            .checked_add(size)
            .filter(|&e| e <= MMAP_END)?;
        let range = Range::new(self.mmap_next, end);
        self.mmap_next = end;
        Some(range)
    }

    /// Notes that `range` is unmapped (the part inside the used mmap area becomes reusable)
    /// or mapped with MAP_FIXED (no longer free).
    fn mmap_range_freed(&mut self, range: Range) {
        let part = range.clip(&Range::new(MMAP_BASE, self.mmap_next));
        let _ = self.mmap_free.insert(part);
    }

    fn mmap_range_taken(&mut self, range: Range) {
        // A removal that would split a range in a full set leaves it listed: drop the whole
        // list rather than ever hand out a mapped range.
        if self.mmap_free.remove(range).is_err() {
            self.mmap_free = RangeSet::new();
        }
        if range.end > self.mmap_next && range.start < MMAP_END {
            self.mmap_next = self.mmap_next.max(range.end.min(MMAP_END));
        }
    }
}

/// Sets the break to the end of the image (`image_end`, page-aligned).
pub fn init(image_end: u64) {
    let mut s = SPACE.lock();
    s.brk_start = image_end;
    s.brk = image_end;
}

/// Page-table flags for mmap/mprotect protections.
fn flags_for(prot: u64) -> u64 {
    if prot & (PROT_READ | PROT_WRITE | PROT_EXEC) == 0 {
        return BACKED;
    }
    let mut flags = PRESENT;
    if prot & PROT_WRITE != 0 {
        flags |= WRITABLE;
    }
    if prot & PROT_EXEC == 0 {
        flags |= paging::nx();
    }
    flags
}

fn is_mapped(page: u64) -> bool {
    paging::leaf(page).is_some_and(|e| e & (PRESENT | BACKED) != 0)
}

fn pages(range: Range) -> impl Iterator<Item = u64> {
    (range.start..range.end).step_by(PAGE as usize)
}

/// Unmaps every page of `range`, giving frames back.
fn unmap_range(range: Range) {
    for page in pages(range) {
        if let Some(frame) = paging::unmap(page) {
            frames::free(frame);
        }
    }
}

/// Maps `range` (page-aligned, nothing mapped there) to fresh zeroed frames; all or nothing.
fn map_zeroed(range: Range, flags: u64) -> Result<(), u64> {
    map_zeroed_from(range, flags, frames::alloc_zeroed)
}

/// [`map_zeroed`] with frames from `alloc`.
fn map_zeroed_from(
    range: Range,
    flags: u64,
    alloc: fn() -> Result<u64, frames::OutOfMemory>,
) -> Result<(), u64> {
    for page in pages(range) {
        let mapped = alloc().map_err(|_| ENOMEM).and_then(|frame| {
            paging::map(page, frame, flags).map_err(|_| {
                frames::free(frame);
                ENOMEM
            })
        });
        if let Err(e) = mapped {
            unmap_range(Range::new(range.start, page));
            return Err(e);
        }
    }
    Ok(())
}

/// Maps the program's stack, RW and NX.
pub fn map_stack(range: Range) -> Result<(), u64> {
    map_zeroed_from(
        range,
        PRESENT | WRITABLE | paging::nx(),
        frames::alloc_zeroed_high,
    )
}

fn user_range(addr: u64, len: u64) -> Option<Range> {
    let end = addr.checked_add(len)?.checked_next_multiple_of(PAGE)?;
    (addr >= USER_MIN && end <= USER_END).then_some(Range::new(addr, end))
}

/// brk(addr): moves the break within BRK_MAX of its start; returns the (possibly unchanged)
/// break, as the raw system call does.
pub fn brk(addr: u64) -> u64 {
    let mut s = SPACE.lock();
    if addr < s.brk_start || addr > s.brk_start + BRK_MAX {
        return s.brk;
    }
    let old_end = s.brk.next_multiple_of(PAGE);
    let new_end = addr.next_multiple_of(PAGE);
    if new_end > old_end {
        let grown = Range::new(old_end, new_end);
        if pages(grown).any(is_mapped)
            || map_zeroed(grown, flags_for(PROT_READ | PROT_WRITE)).is_err()
        {
            return s.brk;
        }
    } else {
        unmap_range(Range::new(new_end, old_end));
    }
    s.brk = addr;
    addr
}

/// mmap(addr, len, prot, flags, fd, offset): anonymous memory only.
pub fn mmap(addr: u64, len: u64, prot: u64, flags: u64) -> SysResult {
    if len == 0 || !addr.is_multiple_of(PAGE) {
        return Err(EINVAL);
    }
    if flags & MAP_ANONYMOUS == 0 {
        crate::println!("standin: mmap of a file refused (no file system here)");
        return Err(ENODEV);
    }
    let size = len.checked_next_multiple_of(PAGE).ok_or(ENOMEM)?;
    let range = if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
        let range = user_range(addr, size).ok_or(EINVAL)?;
        if pages(range).any(is_mapped) {
            if flags & MAP_FIXED_NOREPLACE != 0 {
                return Err(EEXIST);
            }
            unmap_range(range);
        }
        SPACE.lock().mmap_range_taken(range);
        range
    } else {
        SPACE.lock().take_mmap_range(size).ok_or(ENOMEM)?
    };
    if let Err(e) = map_zeroed(range, flags_for(prot)) {
        SPACE.lock().mmap_range_freed(range);
        return Err(e);
    }
    Ok(range.start)
}

/// munmap(addr, len).
pub fn munmap(addr: u64, len: u64) -> SysResult {
    if !addr.is_multiple_of(PAGE) || len == 0 {
        return Err(EINVAL);
    }
    let range = user_range(addr, len).ok_or(EINVAL)?;
    unmap_range(range);
    SPACE.lock().mmap_range_freed(range);
    Ok(0)
}

/// mprotect(addr, len, prot): every page must be mapped (else ENOMEM, as Linux).
pub fn mprotect(addr: u64, len: u64, prot: u64) -> SysResult {
    if !addr.is_multiple_of(PAGE) {
        return Err(EINVAL);
    }
    let range = user_range(addr, len).ok_or(ENOMEM)?;
    if !pages(range).all(is_mapped) {
        return Err(ENOMEM);
    }
    let flags = flags_for(prot);
    for page in pages(range) {
        paging::set_flags(page, flags);
    }
    Ok(0)
}

/// madvise(addr, len, advice): advice only, except MADV_DONTNEED, after which the pages read
/// as zero (what Linux guarantees for private anonymous memory).
pub fn madvise(addr: u64, len: u64, advice: u64) -> SysResult {
    if !addr.is_multiple_of(PAGE) {
        return Err(EINVAL);
    }
    let range = user_range(addr, len).ok_or(ENOMEM)?;
    if advice == MADV_DONTNEED {
        let zeros = [0u8; PAGE as usize];
        for page in pages(range).filter(|&p| is_mapped(p)) {
            let _ = user::fill_program_memory(page, &zeros);
        }
    }
    Ok(0)
}
