//! The dead boot stack, 0x1000..0x11000, and the check that whoever borrowed a page of it gave
//! it back as it found it.
//!
//! On the Unikraft kernel this host stands in for, that range is the early boot stack: dead once
//! the program's `main` runs, identity-mapped RW+NX, and the only RAM below 1 MiB free to borrow
//! (the kernel's page tables and the program's own pages fill the rest of low memory; here the
//! frame allocator puts them there, frames.rs). The host keeps nothing live in it: its stacks
//! are in the bss (stacks.rs). Until the multiboot information was copied (QEMU's loader puts
//! it at 0x9000) the range holds that; then `init` fills every page with a pattern, as a dead
//! stack holds old data, and each `occupy=` page with a canary of its own (a page the host
//! pretends to still use: left out of `STANDIN_LOWMEM_FREE`, and holding what live kernel data
//! holds, pointers into the direct map, so that a library that was not told can see it).
//!
//! `check` runs at every exit and names the first damaged word of each region: a page a library
//! borrowed (for an AP trampoline, say) must come back exactly as it was, and an occupied page
//! must never have been touched.

use core::fmt;

use standin_core::physmem::{self, Borrowable};
use standin_core::ranges::{Range, RangeSet, PAGE};

use crate::boot::BootInfo;
use crate::paging::phys_to_virt;

/// An occupied page's canary: live host data, as the page above Unikraft's boot stack holds
/// (measured: list links through the direct map, some to the page itself). Even words point
/// through the direct map at themselves, odd ones are "STANDIN\0" mixed with the word's
/// address. A copy of another page, zeroes or a trampoline never match.
fn canary(addr: u64) -> u64 {
    if addr.is_multiple_of(16) {
        standin_core::layout::PHYS_OFFSET + addr
    } else {
        0x5354_414e_4449_4e00 ^ addr.rotate_left(17)
    }
}

/// "DEADSTAK" mixed with each word's address: what the dead boot stack holds (a different
/// pattern from the canary, so that a page copied over another is caught too).
fn dead_stack_fill(addr: u64) -> u64 {
    0x4445_4144_5354_414b ^ addr.rotate_left(23)
}

/// At most this many `occupy=` pages.
const MAX_OCCUPIED: usize = standin_core::cmdline::MAX_OCCUPY;

struct Watched {
    /// The dead boot stack's RAM minus the occupied pages: the program may borrow these.
    dead: Borrowable,
    occupied: [u64; MAX_OCCUPIED],
    count: usize,
}

static WATCHED: spin::Mutex<Watched> = spin::Mutex::new(Watched {
    dead: RangeSet::new(),
    occupied: [0; MAX_OCCUPIED],
    count: 0,
});

/// Low RAM the program may borrow (what `STANDIN_LOWMEM_FREE` says).
pub type LowFree = Borrowable;

/// The dead boot stack's RAM by the memory map, whole pages. `occupy=` pages come off with
/// [`take_page`].
pub fn free_ranges(boot: &BootInfo) -> LowFree {
    physmem::borrowable(boot.memory_map())
}

/// Takes `page` out of `free`; false if it is not free.
pub fn take_page(free: &mut LowFree, page: u64) -> bool {
    let range = Range::from_len(page, PAGE);
    free.contains_range(&range) && free.remove(range).is_ok()
}

fn words(range: Range) -> impl Iterator<Item = u64> {
    (range.start..range.end).step_by(8)
}

fn write_word(addr: u64, value: u64) {
    // SAFETY: `addr` is in the dead boot stack (RAM by the memory map, the host's until the
    // program runs, nothing else there once the multiboot information was copied), reached
    // through the physical view.
    unsafe { (phys_to_virt(addr) as *mut u64).write_volatile(value) };
}

fn read_word(addr: u64) -> u64 {
    // SAFETY: as in write_word (reading).
    unsafe { (phys_to_virt(addr) as *const u64).read_volatile() }
}

/// Fills the dead boot stack: `free` (what the program may borrow) with the dead-stack pattern,
/// each of `occupied` (taken out of `free` before) with its canary. Call once the multiboot
/// information was copied out of it.
pub fn init(free: &LowFree, occupied: &[u64]) {
    for range in free.ranges() {
        words(*range).for_each(|a| write_word(a, dead_stack_fill(a)));
    }
    let mut w = WATCHED.lock();
    w.dead = free.clone();
    for &page in occupied {
        words(Range::from_len(page, PAGE)).for_each(|a| write_word(a, canary(a)));
        let n = w.count;
        w.occupied[n] = page;
        w.count += 1;
    }
}

/// Where the dead boot stack was found damaged.
#[derive(Debug, Clone, Copy)]
pub struct Damage {
    /// The first bad word.
    pub addr: u64,
    /// What it held.
    pub found: u64,
    /// Bad words in that region.
    pub bad_words: u64,
    /// Which region.
    pub what: &'static str,
    /// The region.
    pub region: Range,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bad words in the {} ({}), first at {:#x} (found {:#x})",
            self.bad_words, self.what, self.region, self.addr, self.found
        )
    }
}

fn check_region(region: Range, what: &'static str, expect: impl Fn(u64) -> u64) -> Option<Damage> {
    let mut damage: Option<Damage> = None;
    for addr in words(region) {
        let found = read_word(addr);
        if found != expect(addr) {
            match &mut damage {
                Some(d) => d.bad_words += 1,
                None => {
                    damage = Some(Damage {
                        addr,
                        found,
                        bad_words: 1,
                        what,
                        region,
                    })
                }
            }
        }
    }
    damage
}

/// Checks every word of the dead boot stack and of the occupied pages; reports each damaged
/// region through `report`. Returns whether all were intact.
pub fn check(mut report: impl FnMut(Damage)) -> bool {
    let mut intact = true;
    let mut found = |d: Option<Damage>| {
        if let Some(d) = d {
            intact = false;
            report(d);
        }
    };
    let w = WATCHED.lock();
    for range in w.dead.ranges() {
        found(check_region(*range, "dead boot stack", dead_stack_fill));
    }
    for &page in &w.occupied[..w.count] {
        found(check_region(
            Range::from_len(page, PAGE),
            "occupied page",
            canary,
        ));
    }
    intact
}

/// What `check` watches, for the "intact" line: `dead boot stack at 0x1000-0x10fff` (the
/// occupied pages included, last bytes inclusive), then `, occupied page 0x8000` for each.
pub struct Summary;

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = WATCHED.lock();
        let mut whole = w.dead.clone();
        for &page in &w.occupied[..w.count] {
            // The pages came out of these ranges: putting them back needs no room.
            let _ = whole.insert(Range::from_len(page, PAGE));
        }
        f.write_str("dead boot stack at ")?;
        for (i, r) in whole.ranges().iter().enumerate() {
            let sep = if i > 0 { "," } else { "" };
            write!(f, "{sep}{:#x}-{:#x}", r.start, r.end - 1)?;
        }
        for &page in &w.occupied[..w.count] {
            write!(f, ", occupied page {page:#x}")?;
        }
        Ok(())
    }
}
