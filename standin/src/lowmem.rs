//! The host's live data in low memory, and the check that nobody else wrote there.
//!
//! A Unikraft kernel keeps its boot stack in 0x1000..0x11000; this host keeps its system-call
//! and interrupt stacks there, and fills every other page of that range with a canary pattern:
//!
//! ```text
//! 0x1000          canary             0xa000..0xc000   IRQ stack (IST1)
//! 0x2000..0x6000  system-call stack  0xc000..0xe000   exception stack (IST2)
//! 0x6000..0xa000  canary             0xe000..0x10000  NMI/#DF/#MC stack (IST3)
//!   (0x8000, the classic AP trampoline page, among them)  0x10000  canary
//! ```
//! Stacks are filled with a pattern too; their lower halves must still hold it at the end (the
//! host uses far less than half of each). `occupy=` pages get a canary of their own. `check`
//! runs at every exit and names the first damaged place.

use core::fmt;

use standin_core::layout::{HOST_LOW_LIVE, ONE_MIB};
use standin_core::multiboot::MEMORY_AVAILABLE;
use standin_core::ranges::{Range, RangeSet, PAGE};

use crate::boot::BootInfo;
use crate::paging::phys_to_virt;

/// The system-call stack (its top goes into the per-CPU block).
pub const SYSCALL_STACK: Range = Range::new(0x2000, 0x6000);
/// IST1: external interrupts (the timer).
pub const IRQ_STACK: Range = Range::new(0xa000, 0xc000);
/// IST2: exceptions.
pub const EXCEPTION_STACK: Range = Range::new(0xc000, 0xe000);
/// IST3: NMI, double fault, machine check (which may strike on any other stack).
pub const CRITICAL_STACK: Range = Range::new(0xe000, 0x1_0000);
/// The canary pages.
const CANARIES: [Range; 3] = [
    Range::new(0x1000, 0x2000),
    Range::new(0x6000, 0xa000),
    Range::new(0x1_0000, 0x1_1000),
];
const STACKS: [(Range, &str); 4] = [
    (SYSCALL_STACK, "system-call stack"),
    (IRQ_STACK, "interrupt stack"),
    (EXCEPTION_STACK, "exception stack"),
    (CRITICAL_STACK, "NMI/double-fault stack"),
];

// The pieces tile HOST_LOW_LIVE exactly: each address belongs to one.
const _: () = {
    let mut covered = 0;
    let mut i = 0;
    while i < 3 {
        covered += CANARIES[i].end - CANARIES[i].start;
        i += 1;
    }
    let mut i = 0;
    while i < 4 {
        covered += STACKS[i].0.end - STACKS[i].0.start;
        i += 1;
    }
    assert!(covered == HOST_LOW_LIVE.end - HOST_LOW_LIVE.start);
};

/// "STANDIN\0" mixed with each word's address: a copy of another page, zeroes or a
/// trampoline never match.
fn canary(addr: u64) -> u64 {
    0x5354_414e_4449_4e00 ^ addr.rotate_left(17)
}

/// What fills an unused stack.
const STACK_FILL: u64 = 0x5354_4143_4b5f_5f5f; // "STACK___"

/// At most this many `occupy=` pages.
const MAX_OCCUPIED: usize = standin_core::cmdline::MAX_OCCUPY;

struct Occupied {
    pages: [u64; MAX_OCCUPIED],
    count: usize,
}

static OCCUPIED: spin::Mutex<Occupied> = spin::Mutex::new(Occupied {
    pages: [0; MAX_OCCUPIED],
    count: 0,
});

/// Free low RAM: the program's to use (what `STANDIN_LOWMEM_FREE` says).
pub type LowFree = RangeSet<16>;

/// Low RAM the host does not use: available RAM below 1 MiB from the memory map, whole pages,
/// minus page 0 (real-mode IVT and BIOS data area, which the host reads) and the host's live
/// range. `occupy=` pages come off with [`take_page`].
pub fn free_ranges(boot: &BootInfo) -> LowFree {
    let mut free = LowFree::new();
    for region in boot.memory_map() {
        if region.kind == MEMORY_AVAILABLE {
            let _ = free.insert(region.range.pages_inside());
        }
    }
    free.clip(&Range::new(PAGE, ONE_MIB));
    let _ = free.remove(HOST_LOW_LIVE);
    free
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
    // SAFETY: `addr` is in the host's low range or an occupied page: RAM the host owns and
    // nothing else is supposed to touch, reached through the direct map.
    unsafe { (phys_to_virt(addr) as *mut u64).write_volatile(value) };
}

fn read_word(addr: u64) -> u64 {
    // SAFETY: as in write_word (reading).
    unsafe { (phys_to_virt(addr) as *const u64).read_volatile() }
}

/// Makes the low range live: canaries, stack fill, and the occupied pages. Call after the
/// multiboot information (which a loader may have left there) was copied.
pub fn init(occupied: &[u64]) {
    for range in CANARIES {
        words(range).for_each(|a| write_word(a, canary(a)));
    }
    for (range, _) in STACKS {
        words(range).for_each(|a| write_word(a, STACK_FILL));
    }
    let mut o = OCCUPIED.lock();
    for &page in occupied {
        words(Range::from_len(page, PAGE)).for_each(|a| write_word(a, canary(a)));
        let n = o.count;
        o.pages[n] = page;
        o.count += 1;
    }
}

/// Where the low data was found damaged.
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
            "{} bad words in the host's {} ({}), first at {:#x} (found {:#x})",
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

/// Checks every canary, the lower half of every stack and the occupied pages; reports each
/// damaged region through `report`. Returns whether all were intact.
pub fn check(mut report: impl FnMut(Damage)) -> bool {
    let mut intact = true;
    let mut found = |d: Option<Damage>| {
        if let Some(d) = d {
            intact = false;
            report(d);
        }
    };
    for range in CANARIES {
        found(check_region(range, "canary page", canary));
    }
    for (range, what) in STACKS {
        let lower_half = Range::new(range.start, range.start + range.len() / 2);
        found(check_region(lower_half, what, |_| STACK_FILL));
    }
    let o = OCCUPIED.lock();
    for &page in &o.pages[..o.count] {
        found(check_region(
            Range::from_len(page, PAGE),
            "occupied page (occupy=)",
            canary,
        ));
    }
    intact
}

/// What `check` watches, for the "intact" line.
pub struct Watched;

impl fmt::Display for Watched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host data at {:#x}-{:#x}",
            HOST_LOW_LIVE.start,
            HOST_LOW_LIVE.end - 1
        )?;
        let o = OCCUPIED.lock();
        for &page in &o.pages[..o.count] {
            write!(f, ", occupied page {page:#x}")?;
        }
        Ok(())
    }
}
