//! Reading the host's 4-level page tables (SDM Vol. 3A §5.5): where a virtual address maps, how
//! far a linear mapping of physical memory really reaches, and which low physical pages the
//! host's tables occupy or map at an address of the host's own choosing.
//!
//! Every entry is read through `read_entry(physical address of the entry)`, which returns
//! `None` when the entry cannot be read (outside the mapping the library was given, or a fault
//! caught by a probe): so the same walks run on the host in unit tests (a map of fake memory),
//! in the demo kernel (an identity mapping) and in a hosted program (a mapping still being
//! checked, read under `probe`).

use x86_64::structures::paging::PageTableFlags;

/// Entry bits (SDM Vol. 3A Tables 5-15 to 5-20).
pub(crate) const PRESENT: u64 = PageTableFlags::PRESENT.bits();
pub(crate) const WRITABLE: u64 = PageTableFlags::WRITABLE.bits();
const USER: u64 = PageTableFlags::USER_ACCESSIBLE.bits();
const NO_EXECUTE: u64 = PageTableFlags::NO_EXECUTE.bits();
/// PS in a PDPTE or PDE: the entry maps a 1 GiB or 2 MiB page (reserved in a PML4E).
const PAGE_SIZE: u64 = PageTableFlags::HUGE_PAGE.bits();
/// Bits 51:12: the next table or the page (for large pages, bit 12 is PAT and is masked off by
/// the page's alignment).
pub(crate) const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
const ENTRIES: u64 = 512;
const PAGE: u64 = 4096;
/// Pages below 1 MiB, the ones a SIPI can start a CPU in.
pub const LOW_PAGES: usize = 256;

/// Index of `virt` in the table at `level` (4 = PML4 … 1 = page table).
fn index(virt: u64, level: u32) -> u64 {
    (virt >> (12 + 9 * (level - 1))) & 0x1FF
}

/// Bits 63:47 all equal (SDM Vol. 1 §3.3.7.1).
pub fn canonical(virt: u64) -> bool {
    let top = virt >> 47;
    top == 0 || top == 0x1_FFFF
}

/// What a virtual address maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// The physical address the virtual address maps to.
    pub phys: u64,
    /// Bytes of the page holding it: 4 KiB, 2 MiB or 1 GiB.
    pub size: u64,
    /// Whether every level allows writes.
    pub writable: bool,
    /// Whether no level forbids instruction fetches (XD, bit 63, clear everywhere; with
    /// EFER.NXE clear the bit is reserved, so a clear bit is what works either way).
    pub executable: bool,
    /// Whether every level allows user-mode access: a user page, which supervisor code cannot
    /// run from under CR4.SMEP (SDM Vol. 3A §5.6.1).
    pub user: bool,
}

/// The page `virt` lies in, under the tables at `root`; `None` if it is not mapped, not
/// canonical, or an entry on the way cannot be read. Follows 1 GiB and 2 MiB pages.
pub fn translate_leaf(
    root: u64,
    virt: u64,
    mut read_entry: impl FnMut(u64) -> Option<u64>,
) -> Option<Leaf> {
    if !canonical(virt) {
        return None;
    }
    let mut table = root & ADDR_MASK;
    let (mut writable, mut executable, mut user) = (true, true, true);
    for level in (1..=4).rev() {
        let entry = read_entry(table + 8 * index(virt, level))?;
        if entry & PRESENT == 0 {
            return None;
        }
        writable &= entry & WRITABLE != 0;
        executable &= entry & NO_EXECUTE == 0;
        user &= entry & USER != 0;
        let span_bits = 12 + 9 * (level - 1);
        if level == 1 || (level <= 3 && entry & PAGE_SIZE != 0) {
            let size = 1u64 << span_bits;
            let base = entry & ADDR_MASK & !(size - 1);
            return Some(Leaf {
                phys: base | (virt & (size - 1)),
                size,
                writable,
                executable,
                user,
            });
        }
        table = entry & ADDR_MASK;
    }
    None
}

/// The physical address `virt` maps to under the tables at `root` (see [`translate_leaf`]).
pub fn translate(root: u64, virt: u64, read_entry: impl FnMut(u64) -> Option<u64>) -> Option<u64> {
    translate_leaf(root, virt, read_entry).map(|leaf| leaf.phys)
}

/// How far physical memory from 0 up is really mapped at `virt = phys + offset`, up to `limit`:
/// the first physical address below `limit` that is not mapped there (or not to itself), else
/// `limit`. One translation per page of the mapping, so a mapping made of 1 GiB pages is
/// checked in a few hundred steps; at most `max_steps` translations are made (the extent found
/// so far is returned after that).
pub fn mapped_extent(
    root: u64,
    offset: u64,
    limit: u64,
    max_steps: usize,
    mut read_entry: impl FnMut(u64) -> Option<u64>,
) -> u64 {
    let mut phys = 0u64;
    for _ in 0..max_steps {
        if phys >= limit {
            return limit;
        }
        let Some(virt) = phys.checked_add(offset).filter(|&v| canonical(v)) else {
            return phys;
        };
        match translate_leaf(root, virt, &mut read_entry) {
            Some(leaf) if leaf.phys == phys => {
                // The rest of this page maps the rest of the page's physical span.
                phys = (phys | (leaf.size - 1)) + 1;
            }
            _ => return phys,
        }
    }
    phys.min(limit)
}

/// What a physical page below 1 MiB is to the host's page tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowPageUse {
    /// Nothing the tables show: not a table, mapped (if at all) only where physical memory as
    /// a whole is (identity, the direct map) or inside a large page.
    Unknown,
    /// One of the host's page tables.
    PageTable,
    /// Mapped with a 4 KiB page at this virtual address of the host's choosing (neither its
    /// physical address nor the direct map), or kept in a non-present entry there: memory the
    /// host gave to something (a program image, a heap, a stack, a guard page).
    MappedAt(u64),
}

/// What [`survey`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Survey {
    /// Per page below 1 MiB.
    pub low: [LowPageUse; LOW_PAGES],
    /// Tables read (a table reached twice counts twice).
    pub tables: u32,
}

/// Why a survey stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SurveyError {
    /// An entry of the table at this physical address could not be read.
    Unreadable {
        /// The table's physical address.
        table: u64,
    },
    /// More than this many tables: not surveyed to the end.
    TooManyTables(u32),
}

impl core::fmt::Display for SurveyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SurveyError::Unreadable { table } => write!(
                f,
                "the host's page table at physical {table:#x} cannot be read through the physical mapping"
            ),
            SurveyError::TooManyTables(n) => write!(
                f,
                "the host has more than {n} page tables; not surveyed (the low pages could not be checked)"
            ),
        }
    }
}

/// Reads every table reachable from `root` and notes, for each physical page below 1 MiB,
/// whether it is a table or mapped by a 4 KiB page at a virtual address that is neither the
/// page's physical address nor `phys + direct_offset`.
///
/// Why 4 KiB pages only: a 2 MiB or 1 GiB page covering low memory maps physical memory
/// wholesale (it spans the IVT, the BIOS areas and everything else below 1 MiB), so it says
/// nothing about any one page; a 4 KiB page at an address of the host's own choosing is an
/// allocation. Identity and direct-map addresses are how any page can be reached, so they say
/// nothing either. At most `max_tables` tables are read.
pub fn survey(
    root: u64,
    direct_offset: u64,
    max_tables: u32,
    mut read_entry: impl FnMut(u64) -> Option<u64>,
) -> Result<Survey, SurveyError> {
    let mut found = Survey {
        low: [LowPageUse::Unknown; LOW_PAGES],
        tables: 0,
    };
    walk(
        root & ADDR_MASK,
        4,
        0,
        direct_offset,
        max_tables,
        &mut found,
        &mut read_entry,
    )?;
    Ok(found)
}

fn note_table(found: &mut Survey, table: u64) {
    if let Some(page) = found.low.get_mut((table / PAGE) as usize) {
        *page = LowPageUse::PageTable;
    }
}

/// Depth-first over the table at `table` (level 4 = PML4), whose entries map from
/// virtual address `base`. Recursion is at most four deep.
fn walk(
    table: u64,
    level: u32,
    base: u64,
    direct_offset: u64,
    max_tables: u32,
    found: &mut Survey,
    read_entry: &mut impl FnMut(u64) -> Option<u64>,
) -> Result<(), SurveyError> {
    if found.tables >= max_tables {
        return Err(SurveyError::TooManyTables(max_tables));
    }
    found.tables += 1;
    note_table(found, table);
    let span_bits = 12 + 9 * (level - 1);
    for i in 0..ENTRIES {
        let entry = read_entry(table + 8 * i).ok_or(SurveyError::Unreadable { table })?;
        // A non-present 4 KiB entry that still names a frame is one the host keeps for a page
        // it made inaccessible (PROT_NONE, a guard page): its frame is not free either.
        let kept = level == 1 && entry & ADDR_MASK != 0;
        if entry & PRESENT == 0 && !kept {
            continue;
        }
        let mut virt = base | (i << span_bits);
        if level == 4 && i >= 256 {
            virt |= 0xFFFF_0000_0000_0000; // sign extension of bit 47
        }
        let next = entry & ADDR_MASK;
        if level == 1 {
            if next < (LOW_PAGES as u64) * PAGE
                && virt != next
                && virt != next.wrapping_add(direct_offset)
            {
                let page = &mut found.low[(next / PAGE) as usize];
                if *page == LowPageUse::Unknown {
                    *page = LowPageUse::MappedAt(virt);
                }
            }
        } else if level == 4 || entry & PAGE_SIZE == 0 {
            walk(
                next,
                level - 1,
                virt,
                direct_offset,
                max_tables,
                found,
                read_entry,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Fake physical memory: entries by physical address, absent ones read as 0.
    #[derive(Default)]
    struct Mem {
        words: HashMap<u64, u64>,
        unreadable: Option<u64>,
    }

    impl Mem {
        fn set(&mut self, table: u64, index: u64, value: u64) {
            self.words.insert(table + 8 * index, value);
        }
        fn read(&self, pa: u64) -> Option<u64> {
            if self.unreadable == Some(pa & !0xFFF) {
                return None;
            }
            Some(*self.words.get(&pa).unwrap_or(&0))
        }
    }

    const P: u64 = PRESENT;
    const W: u64 = WRITABLE;
    const DIRECT: u64 = 0xFFFF_FF80_0000_0000;

    /// A Unikraft-like layout: root 0x12000; PML4[511] -> PDPT 0x13000 of 1 GiB pages (the
    /// direct map of 4 GiB); PML4[0] -> PDPT 0x14000 -> PD 0x15000 -> PT 0x16000 with the
    /// identity pages 0x1000 and 0x2000 (a boot stack); PDPT 0x14000[64] (64 GiB) -> PD
    /// 0x17000 -> PT 0x18000: a program whose pages 0x21000, 0x20000, 0x22000 are low.
    fn unikraft_like() -> Mem {
        let mut m = Mem::default();
        m.set(0x12000, 511, 0x13000 | P | W);
        for g in 0..4 {
            m.set(0x13000, g, (g << 30) | P | W | PAGE_SIZE);
        }
        m.set(0x12000, 0, 0x14000 | P | W);
        m.set(0x14000, 0, 0x15000 | P | W);
        m.set(0x15000, 0, 0x16000 | P | W);
        m.set(0x16000, 1, 0x1000 | P | W);
        m.set(0x16000, 2, 0x2000 | P | W);
        m.set(0x14000, 64, 0x17000 | P | W);
        m.set(0x17000, 0, 0x18000 | P | W);
        m.set(0x18000, 1, 0x21000 | P | W);
        m.set(0x18000, 2, 0x20000 | P);
        m.set(0x18000, 3, 0x22000 | P);
        // A page made inaccessible: not present, its frame kept in the entry.
        m.set(0x18000, 5, 0x23000);
        m
    }

    #[test]
    fn survey_finds_tables_and_host_mappings_of_low_pages() {
        let mut m = unikraft_like();
        // An offset under which 0x22000's mapping at 0x10_0000_3000 is its direct-map address.
        let offset = 0x10_0000_3000 - 0x22000;
        let s = survey(0x12000, offset, 100, |pa| m.read(pa)).unwrap();
        assert_eq!(s.tables, 7);
        for t in [
            0x12000u64, 0x13000, 0x14000, 0x15000, 0x16000, 0x17000, 0x18000,
        ] {
            assert_eq!(s.low[(t / PAGE) as usize], LowPageUse::PageTable, "{t:#x}");
        }
        assert_eq!(s.low[1], LowPageUse::Unknown, "identity 0x1000");
        assert_eq!(s.low[2], LowPageUse::Unknown, "identity 0x2000");
        assert_eq!(s.low[0x21], LowPageUse::MappedAt(0x10_0000_1000));
        assert_eq!(s.low[0x20], LowPageUse::MappedAt(0x10_0000_2000));
        assert_eq!(s.low[0x22], LowPageUse::Unknown, "direct-map address");
        assert_eq!(
            s.low[0x23],
            LowPageUse::MappedAt(0x10_0000_5000),
            "kept frame"
        );
        // The 1 GiB pages of the direct map cover every low page: no evidence either.
        assert_eq!(s.low[0x30], LowPageUse::Unknown);
        m.unreadable = Some(0x17000);
        assert_eq!(
            survey(0x12000, DIRECT, 100, |pa| m.read(pa)),
            Err(SurveyError::Unreadable { table: 0x17000 })
        );
        m.unreadable = None;
        assert_eq!(
            survey(0x12000, DIRECT, 3, |pa| m.read(pa)),
            Err(SurveyError::TooManyTables(3))
        );
    }

    #[test]
    fn a_recursive_slot_terminates() {
        let mut m = unikraft_like();
        m.set(0x12000, 510, 0x12000 | P | W); // the root maps itself
        let s = survey(0x12000, DIRECT, 10_000, |pa| m.read(pa)).unwrap();
        assert!(s.tables > 7);
        assert_eq!(s.low[0x12], LowPageUse::PageTable);
    }

    #[test]
    fn extent_of_the_direct_map() {
        let m = unikraft_like();
        let read = |pa| m.read(pa);
        assert_eq!(mapped_extent(0x12000, DIRECT, 1 << 40, 1000, read), 4 << 30);
        assert_eq!(mapped_extent(0x12000, DIRECT, 3 << 29, 1000, read), 3 << 29);
        assert_eq!(mapped_extent(0x12000, DIRECT, 1 << 40, 2, read), 2 << 30);
        // Offset 0 (identity): only pages 0x1000 and 0x2000 are mapped, page 0 is not.
        assert_eq!(mapped_extent(0x12000, 0, 1 << 40, 1000, read), 0);
        // An offset that maps something else entirely.
        assert_eq!(
            mapped_extent(0x12000, 0x10_0000_1000 - 0x1000, 1 << 40, 1000, read),
            0
        );
        // Non-canonical offsets.
        assert_eq!(
            mapped_extent(0x12000, 0x0000_8000_0000_0000, 1 << 40, 1000, read),
            0
        );
    }

    #[test]
    fn walks_large_pages() {
        // Root at 0x1000: PML4[511] -> PDPT 0x2000; PDPT[510] = 1 GiB page at 0x4000_0000;
        // PDPT[511] -> PD 0x3000; PD[0] = 2 MiB page at 0x20_0000 (PAT bit 12 set).
        let mut mem: HashMap<u64, u64> = HashMap::new();
        mem.insert(0x1000 + 8 * 511, 0x2000 | PRESENT);
        mem.insert(
            0x2000 + 8 * 510,
            0x4000_0000 | PRESENT | WRITABLE | PAGE_SIZE,
        );
        mem.insert(0x2000 + 8 * 511, 0x3000 | PRESENT | WRITABLE);
        mem.insert(
            0x3000,
            0x20_0000 | PRESENT | PAGE_SIZE | (1 << 12) | (1 << 63),
        );
        let read = |pa| Some(*mem.get(&pa).unwrap_or(&0));
        assert_eq!(
            translate(0x1000, 0xFFFF_FFFF_8123_4567, read),
            Some(0x4123_4567)
        );
        assert_eq!(
            translate_leaf(0x1000, 0xFFFF_FFFF_C001_2345, read),
            Some(Leaf {
                phys: 0x21_2345,
                size: 2 << 20,
                writable: false,
                executable: false,
                user: false,
            })
        );
        mem.insert(0x1000 + 8 * 511, 0x2000 | PRESENT | USER);
        let read = |pa| Some(*mem.get(&pa).unwrap_or(&0));
        assert_eq!(
            translate_leaf(0x1000, 0xFFFF_FFFF_8123_4567, read),
            Some(Leaf {
                phys: 0x4123_4567,
                size: 1 << 30,
                writable: false,
                executable: true,
                user: false,
            }),
            "user only where every level says so"
        );
        assert_eq!(translate(0x1000, 0x1000, read), None);
        assert_eq!(translate(0x1000, 0x0000_8000_0000_0000, read), None);
        assert_eq!(translate(0x1000, 0xFFFF_FFFF_8000_0000, |_| None), None);
    }
}
