//! Which page below 1 MiB the AP trampoline may borrow, and why each other page was refused.
//!
//! A SIPI names a 4 KiB page by its number (the vector): the page must lie below 1 MiB, and
//! vectors 0xA0..=0xBF are reserved (SDM Vol. 3A §11.6.1: "vectors A0H to BFH are reserved;
//! do not use"). Page 0 holds the real-mode IVT and BIOS data area. Beyond those rules, the
//! host's word (the free ranges it names) is checked against what the library can see for
//! itself (live_pages.rs): a page the host's page tables occupy or map for some use of their
//! own, the memory handed to the library, the BSP's stack and descriptor tables are never
//! taken, whatever the host said.

use super::host::LowMemory;
use crate::arch::x86_64::page_walk::{LowPageUse, Survey, LOW_PAGES};
use crate::phys::PhysRange;

/// The page used when it is free: the seed's and the traditional choice.
pub const PREFERRED_PAGE: u64 = 0x8000;
const PAGE: u64 = 4096;

/// Why a page the host named free is not borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Page 0, or a reserved SIPI vector (0xA0-0xBF).
    Reserved,
    /// Listed as in use by the host (`LowMemory::in_use`).
    HostInUse,
    /// One of the host's page tables.
    PageTable,
    /// Mapped by the host with a 4 KiB page at this virtual address of its own choosing.
    MappedByHost(u64),
    /// Part of the memory the host handed to the library.
    LibraryMemory,
    /// Holds the BSP's stack.
    BspStack,
    /// Holds the BSP's GDT, IDT or TSS.
    DescriptorTable,
    /// Holds a pointer into the page itself through the host's direct map (this value at this
    /// physical address): a linked structure the host reaches through that map.
    HoldsHostPointer {
        /// Where the value is (below 1 MiB).
        at: u32,
        /// The value.
        value: u64,
    },
}

impl Refusal {
    /// Whether two neighbouring pages refused for `self` and `other` read as one run.
    fn same_kind(&self, other: &Refusal) -> bool {
        core::mem::discriminant(self) == core::mem::discriminant(other)
    }
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Refusal::Reserved => write!(f, "page 0 / reserved SIPI vectors"),
            Refusal::HostInUse => write!(f, "in use by the host"),
            Refusal::PageTable => write!(f, "host page tables"),
            Refusal::MappedByHost(virt) => write!(f, "host memory (mapped at {virt:#x})"),
            Refusal::LibraryMemory => write!(f, "memory handed to the library"),
            Refusal::BspStack => write!(f, "the BSP's stack"),
            Refusal::DescriptorTable => write!(f, "the BSP's GDT/IDT/TSS"),
            Refusal::HoldsHostPointer { at, value } => {
                write!(f, "host data (pointer {value:#x} at {at:#x})")
            }
        }
    }
}

/// Consecutive refused pages with the same kind of reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusedRun {
    /// First page (below 1 MiB).
    pub start: u32,
    /// One past the last page.
    pub end: u32,
    /// Why (the first page's reason).
    pub why: Refusal,
}

/// Most runs a summary keeps.
pub const SUMMARY_RUNS: usize = 4;

/// What the census refused, short enough to print and to carry in an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalSummary {
    /// Pages the host named free below 1 MiB.
    pub offered: u32,
    /// Of those, pages refused.
    pub refused: u32,
    /// The first refused runs.
    pub runs: [Option<RefusedRun>; SUMMARY_RUNS],
    /// Runs not kept.
    pub more_runs: u32,
}

impl core::fmt::Display for RefusalSummary {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} pages named free below 1 MiB, {} refused",
            self.offered, self.refused
        )?;
        for (i, run) in self.runs.iter().flatten().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            write!(f, "{sep}{:#x}-{:#x} {}", run.start, run.end - 1, run.why)?;
        }
        if self.more_runs > 0 {
            write!(f, "; and {} more ranges", self.more_runs)?;
        }
        Ok(())
    }
}

/// No page below 1 MiB qualifies, or too few for what was needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoLowPage {
    /// Pages needed (the trampoline's, plus the transition tables' when they could not be
    /// taken from the library's memory).
    pub needed: u32,
    /// What was refused.
    pub summary: RefusalSummary,
}

impl core::fmt::Display for NoLowPage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let what = |f: &mut core::fmt::Formatter<'_>| {
            if self.needed == 1 {
                write!(f, "the AP trampoline page")
            } else {
                write!(
                    f,
                    "the AP trampoline and its transition page tables ({} pages)",
                    self.needed
                )
            }
        };
        if self.summary.offered == 0 {
            write!(f, "no free RAM below 1 MiB was named for ")?;
            what(f)?;
            return write!(f, " (page 0 and SIPI vectors 0xA0-0xBF never qualify)");
        }
        write!(f, "not enough usable pages below 1 MiB for ")?;
        what(f)?;
        write!(f, ": {}", self.summary)
    }
}

/// The pages below 1 MiB: which the host offered and which of those are refused.
#[derive(Debug, Clone)]
pub struct LowPageCensus {
    offered: [bool; LOW_PAGES],
    refused: [Option<Refusal>; LOW_PAGES],
}

impl LowPageCensus {
    /// The host's word: the whole pages of its free ranges below 1 MiB, minus its in-use
    /// ranges, page 0 and the reserved vectors.
    pub fn new(low: &LowMemory<'_>) -> LowPageCensus {
        let mut census = LowPageCensus {
            offered: [false; LOW_PAGES],
            refused: [None; LOW_PAGES],
        };
        for n in 0..LOW_PAGES {
            let page = n as u64 * PAGE;
            census.offered[n] = low
                .free
                .iter()
                .any(|f| f.base <= page && page + PAGE <= f.end());
        }
        for n in 0..LOW_PAGES {
            let page = n as u64 * PAGE;
            let range = PhysRange {
                base: page,
                len: PAGE,
            };
            if page == 0 || (0xA0..=0xBF).contains(&n) {
                census.refuse(page, Refusal::Reserved);
            } else if low.in_use.iter().any(|u| u.overlaps(&range)) {
                census.refuse(page, Refusal::HostInUse);
            }
        }
        census
    }

    /// Refuses the page holding physical address `phys` (if below 1 MiB and offered; the
    /// first reason given stands).
    pub fn refuse(&mut self, phys: u64, why: Refusal) {
        let n = (phys / PAGE) as usize;
        if n < LOW_PAGES && self.offered[n] && self.refused[n].is_none() {
            self.refused[n] = Some(why);
        }
    }

    /// Refuses every page a survey of the host's page tables says is in use.
    pub fn refuse_surveyed(&mut self, survey: &Survey) {
        for (n, page) in survey.low.iter().enumerate() {
            let phys = n as u64 * PAGE;
            match page {
                LowPageUse::Unknown => {}
                LowPageUse::PageTable => self.refuse(phys, Refusal::PageTable),
                LowPageUse::MappedAt(virt) => self.refuse(phys, Refusal::MappedByHost(*virt)),
            }
        }
    }

    /// The offered pages not refused so far.
    pub fn candidates(&self) -> impl Iterator<Item = u64> + '_ {
        self.usable_pages()
    }

    fn usable(&self, page: u64) -> bool {
        let n = (page / PAGE) as usize;
        n < LOW_PAGES && self.offered[n] && self.refused[n].is_none()
    }

    fn usable_pages(&self) -> impl Iterator<Item = u64> + '_ {
        (1..LOW_PAGES as u64)
            .map(|n| n * PAGE)
            .filter(|&p| self.usable(p))
    }

    /// [`PREFERRED_PAGE`] if usable, else the lowest usable page.
    pub fn trampoline_page(&self) -> Result<u64, NoLowPage> {
        if self.usable(PREFERRED_PAGE) {
            return Ok(PREFERRED_PAGE);
        }
        self.usable_pages().next().ok_or(self.shortage(1))
    }

    /// `N` pages for the transition page tables: the lowest usable pages but `trampoline`.
    pub fn table_pages<const N: usize>(&self, trampoline: u64) -> Result<[u64; N], NoLowPage> {
        let mut pages = [0u64; N];
        let mut found = 0;
        for p in self.usable_pages().filter(|&p| p != trampoline).take(N) {
            pages[found] = p;
            found += 1;
        }
        if found == N {
            Ok(pages)
        } else {
            Err(self.shortage(1 + N as u32))
        }
    }

    fn shortage(&self, needed: u32) -> NoLowPage {
        NoLowPage {
            needed,
            summary: self.summary(),
        }
    }

    /// The refusals among the offered pages, as runs.
    pub fn summary(&self) -> RefusalSummary {
        let mut summary = RefusalSummary {
            offered: self.offered.iter().filter(|&&o| o).count() as u32,
            refused: 0,
            runs: [None; SUMMARY_RUNS],
            more_runs: 0,
        };
        let mut current: Option<RefusedRun> = None;
        let mut kept = 0;
        let mut close = |run: RefusedRun, summary: &mut RefusalSummary| {
            if kept < SUMMARY_RUNS {
                summary.runs[kept] = Some(run);
                kept += 1;
            } else {
                summary.more_runs += 1;
            }
        };
        for n in 0..LOW_PAGES {
            let page = (n as u64 * PAGE) as u32;
            let why = if self.offered[n] {
                self.refused[n]
            } else {
                None
            };
            match (why, &mut current) {
                (Some(why), Some(run)) if run.end == page && run.why.same_kind(&why) => {
                    run.end = page + PAGE as u32;
                }
                (Some(why), _) => {
                    if let Some(run) = current.take() {
                        close(run, &mut summary);
                    }
                    current = Some(RefusedRun {
                        start: page,
                        end: page + PAGE as u32,
                        why,
                    });
                }
                (None, _) => {
                    if let Some(run) = current.take() {
                        close(run, &mut summary);
                    }
                }
            }
            if why.is_some() {
                summary.refused += 1;
            }
        }
        if let Some(run) = current {
            close(run, &mut summary);
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(base: u64, len: u64) -> PhysRange {
        PhysRange { base, len }
    }

    fn census(free: &[PhysRange], in_use: &[PhysRange]) -> LowPageCensus {
        LowPageCensus::new(&LowMemory { free, in_use })
    }

    #[test]
    fn table_pages_are_the_lowest_usable_ones_but_the_trampoline() {
        let c = census(
            &[r(0x1000, 0x3000), r(0x8000, 0x4000)],
            &[r(0x2000, 0x1000)],
        );
        assert_eq!(c.table_pages::<3>(0x8000), Ok([0x1000, 0x3000, 0x9000]));
        assert_eq!(
            c.table_pages::<5>(0x8000),
            Ok([0x1000, 0x3000, 0x9000, 0xa000, 0xb000])
        );
        let short = c.table_pages::<6>(0x8000).unwrap_err();
        assert_eq!(short.needed, 7);
        assert_eq!(short.summary.offered, 7);
        assert_eq!(short.summary.refused, 1);
        assert_eq!(c.table_pages::<0>(0x8000), Ok([]));
    }

    #[test]
    fn prefers_0x8000() {
        assert_eq!(census(&[r(0, 0x9fc00)], &[]).trampoline_page(), Ok(0x8000));
    }

    #[test]
    fn avoids_used_and_unaligned_and_page_zero() {
        let c = census(&[r(0, 0x9fc00)], &[r(0x7ff0, 0x20)]);
        assert_eq!(c.trampoline_page(), Ok(0x1000));
        // 0x1000 is only half covered, 0x2000 starts before 0x2100: 0x3000 is the first.
        let c = census(&[r(0x0, 0x1800), r(0x2100, 0x2000)], &[]);
        assert_eq!(c.trampoline_page(), Ok(0x3000));
    }

    #[test]
    fn never_reserved_vectors_or_above_1mib() {
        let c = census(&[r(0xA0000, 0x21000), r(0x100000, 0x100000)], &[]);
        assert_eq!(c.trampoline_page(), Ok(0xC0000));
        let e = census(&[r(0xA0000, 0x20000)], &[]).trampoline_page();
        let e = e.unwrap_err();
        assert_eq!(e.summary.offered, 32);
        assert_eq!(e.summary.refused, 32);
        assert_eq!(
            e.summary.runs[0],
            Some(RefusedRun {
                start: 0xA0000,
                end: 0xC0000,
                why: Refusal::Reserved
            })
        );
        let e = census(&[r(0x100000, 0x1000000)], &[])
            .trampoline_page()
            .unwrap_err();
        assert_eq!(e.summary.offered, 0);
        assert!(e
            .to_string()
            .starts_with("no free RAM below 1 MiB was named"));
    }

    #[test]
    fn range_crossing_1mib_counts_below_it() {
        assert_eq!(
            census(&[r(0xFF000, 0x2000)], &[]).trampoline_page(),
            Ok(0xFF000)
        );
    }

    /// The layout measured on a Unikraft 0.20 kernel, with the old example range offered.
    #[test]
    fn what_the_host_uses_is_refused_and_summarised() {
        let mut survey = Survey {
            low: [LowPageUse::Unknown; LOW_PAGES],
            tables: 0,
        };
        for n in 0x12..0x18 {
            survey.low[n] = LowPageUse::PageTable;
        }
        for n in 0x18..0x20 {
            survey.low[n] = LowPageUse::MappedAt(0x4_0000_0000 + (n as u64 - 0x18) * PAGE);
        }
        survey.low[0x5] = LowPageUse::MappedAt(0x10_0000_0000); // outside the offer: ignored
        let mut c = census(&[r(0x11000, 0xf000)], &[]);
        c.refuse_surveyed(&survey);
        c.refuse(0x11000, Refusal::BspStack);
        c.refuse(0x11000, Refusal::LibraryMemory); // the first reason stands
        let e = c.trampoline_page().unwrap_err();
        assert_eq!(e.needed, 1);
        let s = e.summary;
        assert_eq!((s.offered, s.refused, s.more_runs), (15, 15, 0));
        assert_eq!(
            s.to_string(),
            "15 pages named free below 1 MiB, 15 refused: 0x11000-0x11fff the BSP's stack; \
             0x12000-0x17fff host page tables; 0x18000-0x1ffff host memory (mapped at 0x400000000)"
        );
        assert!(e
            .to_string()
            .starts_with("not enough usable pages below 1 MiB for the AP trampoline page: 15"));
        // Many separate runs: the first few are kept, the rest counted.
        let mut c = census(&[r(0x1000, 0x20000)], &[]);
        for n in (1..0x21).step_by(2) {
            c.refuse(n * PAGE, Refusal::DescriptorTable);
        }
        let s = c.summary();
        assert_eq!(s.refused, 16);
        assert_eq!(s.runs.iter().flatten().count(), SUMMARY_RUNS);
        assert_eq!(s.more_runs, 16 - SUMMARY_RUNS as u32);
        assert_eq!(c.trampoline_page(), Ok(0x8000));
    }
}
