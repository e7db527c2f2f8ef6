//! The APs' transition page tables: the few 4 KiB mappings an AP needs between turning paging
//! on in the trampoline and loading the host's own page-table root.
//!
//! Why: the trampoline runs from a page below 1 MiB, which the host's page tables need not map
//! executable (a Unikraft kernel maps low memory read/write, no-execute), and the host's root
//! may sit above 4 GiB, out of reach of the 32-bit `mov cr3` the trampoline can do. So the
//! trampoline turns paging on with tables of its own, below 4 GiB, that map exactly
//! - the trampoline page at its physical address (identity), to keep running after paging is
//!   on, and
//! - the library's long-mode entry (`ap_long_mode_entry`) at its real virtual address,
//!
//! jumps to that entry and only then loads the host's root, under which the same virtual
//! address maps the same code. The tables are 4-level (the host must not use 5-level paging,
//! the trampoline enables 4-level), all entries supervisor, writable and executable.

use x86_64::structures::paging::PageTableFlags;

use super::page_walk::{canonical, ADDR_MASK, PRESENT, WRITABLE};

/// Accessed and dirty, set from the start: otherwise every AP's first walk writes them back
/// into the same few shared entries (atomic updates of guest memory by many CPUs at once,
/// for bits nobody reads). SDM Vol. 3A Tables 5-15 to 5-20.
const ACCESSED: u64 = PageTableFlags::ACCESSED.bits();
const DIRTY: u64 = PageTableFlags::DIRTY.bits();
const PAGE: u64 = 4096;
const ENTRIES: usize = 512;

/// One 4 KiB frame the tables may use: its physical address (below 4 GiB: the trampoline
/// loads the root from 32-bit mode) and where the library can write it.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    /// Physical address, 4 KiB aligned.
    pub phys: u64,
    /// The frame's 512 entries, writable by the library.
    pub table: *mut u64,
}

/// Why the tables could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TablesError {
    /// More frames were needed than were given.
    OutOfFrames {
        /// Frames given.
        given: usize,
    },
    /// A frame is not 4 KiB aligned or not below 4 GiB.
    BadFrame {
        /// Its physical address.
        phys: u64,
    },
    /// The virtual address is not canonical for 4-level paging, or an address is not 4 KiB
    /// aligned.
    BadAddress {
        /// The address.
        addr: u64,
    },
    /// The virtual page is already mapped to another physical page.
    Conflict {
        /// The virtual page.
        virt: u64,
    },
}

impl core::fmt::Display for TablesError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TablesError::OutOfFrames { given } => write!(
                f,
                "the transition page tables need more than the {given} low pages set aside"
            ),
            TablesError::BadFrame { phys } => write!(
                f,
                "transition page-table frame {phys:#x} is not a 4 KiB page below 4 GiB"
            ),
            TablesError::BadAddress { addr } => write!(
                f,
                "{addr:#x} cannot be mapped by 4-level paging (not canonical or not page aligned)"
            ),
            TablesError::Conflict { virt } => write!(
                f,
                "virtual page {virt:#x} is mapped twice in the transition tables"
            ),
        }
    }
}

/// Transition tables under construction in the frames given.
pub struct TransitionTables<'a> {
    frames: &'a [Frame],
    used: usize,
}

/// Index of `virt` in the table at `level` (4 = PML4 … 1 = page table).
fn index(virt: u64, level: u32) -> usize {
    ((virt >> (12 + 9 * (level - 1))) & 0x1FF) as usize
}

impl<'a> TransitionTables<'a> {
    /// Starts with an empty root in `frames[0]`; the other frames are taken as needed. Every
    /// frame used is zeroed first.
    ///
    /// # Safety
    /// Each frame's `table` must be valid for writes of 4 KiB, not used by anything else while
    /// the tables are, and map the frame's `phys`.
    pub unsafe fn new(frames: &'a [Frame]) -> Result<Self, TablesError> {
        for f in frames {
            if !f.phys.is_multiple_of(PAGE) || f.phys >= 1 << 32 {
                return Err(TablesError::BadFrame { phys: f.phys });
            }
        }
        let mut tables = TransitionTables { frames, used: 0 };
        tables.take()?;
        Ok(tables)
    }

    /// Physical address of the root (PML4), for CR3.
    pub fn root(&self) -> u64 {
        self.frames[0].phys
    }

    /// Frames used so far.
    pub fn frames_used(&self) -> usize {
        self.used
    }

    fn take(&mut self) -> Result<Frame, TablesError> {
        let frame = *self.frames.get(self.used).ok_or(TablesError::OutOfFrames {
            given: self.frames.len(),
        })?;
        // SAFETY: `new`'s contract: the frame is ours and writable for 4 KiB (512 entries).
        unsafe { core::ptr::write_bytes(frame.table, 0, ENTRIES) };
        self.used += 1;
        Ok(frame)
    }

    fn table_at(&self, phys: u64) -> *mut u64 {
        self.frames[..self.used]
            .iter()
            .find(|f| f.phys == phys)
            .map(|f| f.table)
            .expect("every table entry points at one of our frames")
    }

    /// Maps the 4 KiB page at `virt` to the physical page `phys`: present, writable,
    /// executable, supervisor. Mapping the same page to the same frame twice is allowed.
    pub fn map_4k(&mut self, virt: u64, phys: u64) -> Result<(), TablesError> {
        if !canonical(virt) || !virt.is_multiple_of(PAGE) {
            return Err(TablesError::BadAddress { addr: virt });
        }
        if !phys.is_multiple_of(PAGE) || phys & !ADDR_MASK != 0 {
            return Err(TablesError::BadAddress { addr: phys });
        }
        let mut table = self.frames[0].table;
        for level in (2..=4).rev() {
            // SAFETY: `table` is one of our frames (the root or a frame an entry points at),
            // and the index is below 512.
            let entry = unsafe { &mut *table.add(index(virt, level)) };
            if *entry & PRESENT == 0 {
                let next = self.take()?;
                *entry = next.phys | PRESENT | WRITABLE | ACCESSED;
            }
            table = self.table_at(*entry & ADDR_MASK);
        }
        // SAFETY: as above, for the last-level table.
        let entry = unsafe { &mut *table.add(index(virt, 1)) };
        let want = phys | PRESENT | WRITABLE | ACCESSED | DIRTY;
        if *entry & PRESENT != 0 && *entry != want {
            return Err(TablesError::Conflict { virt });
        }
        *entry = want;
        Ok(())
    }
}

/// Most frames [`TransitionTables`] can need for `pages` 4 KiB mappings: the root, and a PDPT,
/// a page directory and a page table for each page when none share a path.
pub const fn frames_needed(pages: usize) -> usize {
    1 + 3 * pages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::page_walk::translate;
    use std::collections::HashMap;

    /// Frames backed by host memory at made-up physical addresses.
    struct FakeFrames {
        backing: Vec<Box<[u64; ENTRIES]>>,
        frames: Vec<Frame>,
    }

    impl FakeFrames {
        fn new(physes: &[u64]) -> FakeFrames {
            let mut backing: Vec<Box<[u64; ENTRIES]>> = physes
                .iter()
                .map(|_| Box::new([0xDEAD_BEEF; ENTRIES]))
                .collect();
            let frames = physes
                .iter()
                .zip(backing.iter_mut())
                .map(|(&phys, b)| Frame {
                    phys,
                    table: b.as_mut_ptr(),
                })
                .collect();
            FakeFrames { backing, frames }
        }

        /// Reads an entry by its physical address, as the CPU would.
        fn entry(&self, pa: u64) -> Option<u64> {
            let by_phys: HashMap<u64, usize> = self
                .frames
                .iter()
                .enumerate()
                .map(|(i, f)| (f.phys, i))
                .collect();
            let i = *by_phys.get(&(pa & !0xFFF))?;
            Some(self.backing[i][((pa & 0xFFF) / 8) as usize])
        }
    }

    #[test]
    fn maps_the_trampoline_page_and_a_high_entry() {
        let fake = FakeFrames::new(&[0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000, 0x7000]);
        // SAFETY: the frames are boxes owned by `fake`, alive for the test.
        let mut t = unsafe { TransitionTables::new(&fake.frames) }.unwrap();
        t.map_4k(0x8000, 0x8000).unwrap();
        // A static-pie program at 64 GiB, its entry code on physical page 0x1234_5000.
        t.map_4k(0x10_0001_c000, 0x1234_5000).unwrap();
        assert_eq!(t.root(), 0x1000);
        // Both under PML4 entry 0: one PDPT, then separate paths (PDPT 0 and 64).
        assert_eq!(t.frames_used(), 6);
        let walk = |v| translate(t.root(), v, |pa| fake.entry(pa));
        assert_eq!(walk(0x8123), Some(0x8123));
        assert_eq!(walk(0x10_0001_c5f0), Some(0x1234_55f0));
        assert_eq!(walk(0x9000), None);
        assert_eq!(walk(0x10_0001_d000), None);
        // Entries are present, writable, supervisor, executable (no NX bit).
        let pte = fake.entry(fake.frames[3].phys + 8 * 8).unwrap();
        assert_eq!(pte, 0x8000 | PRESENT | WRITABLE | ACCESSED | DIRTY);
    }

    #[test]
    fn maps_a_higher_half_entry_under_another_root_slot() {
        let fake = FakeFrames::new(&[0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000, 0x7000]);
        // SAFETY: as above.
        let mut t = unsafe { TransitionTables::new(&fake.frames) }.unwrap();
        t.map_4k(0x9000, 0x9000).unwrap();
        t.map_4k(0xFFFF_FFFF_8010_0000, 0x10_0000).unwrap();
        assert_eq!(t.frames_used(), frames_needed(2));
        let walk = |v| translate(t.root(), v, |pa| fake.entry(pa));
        assert_eq!(walk(0xFFFF_FFFF_8010_0010), Some(0x10_0010));
        assert_eq!(walk(0x9ff8), Some(0x9ff8));
    }

    #[test]
    fn refuses_bad_input() {
        let fake = FakeFrames::new(&[0x1000, 0x2000]);
        // SAFETY: as above.
        let mut t = unsafe { TransitionTables::new(&fake.frames) }.unwrap();
        assert_eq!(
            t.map_4k(0x8000, 0x8000),
            Err(TablesError::OutOfFrames { given: 2 })
        );
        assert_eq!(
            t.map_4k(0x0000_8000_0000_0000, 0x8000),
            Err(TablesError::BadAddress {
                addr: 0x0000_8000_0000_0000
            })
        );
        assert_eq!(
            t.map_4k(0x8010, 0x8000),
            Err(TablesError::BadAddress { addr: 0x8010 })
        );
        let high = FakeFrames::new(&[0x1_0000_0000]);
        assert!(matches!(
            // SAFETY: as above.
            unsafe { TransitionTables::new(&high.frames) },
            Err(TablesError::BadFrame { .. })
        ));
        let fake = FakeFrames::new(&[0x1000, 0x2000, 0x3000, 0x4000]);
        // SAFETY: as above.
        let mut t = unsafe { TransitionTables::new(&fake.frames) }.unwrap();
        t.map_4k(0x8000, 0x8000).unwrap();
        t.map_4k(0x8000, 0x8000).unwrap();
        assert_eq!(
            t.map_4k(0x8000, 0x9000),
            Err(TablesError::Conflict { virt: 0x8000 })
        );
    }
}
