//! The pages a bring-up needs in low physical memory: the trampoline page (a SIPI can only
//! start a CPU below 1 MiB), borrowed from what the host named free and what the census
//! (lowmem.rs, live_pages.rs) lets through, saved first and given back as it was; and the
//! frames of the transition page tables, which only need to be below 4 GiB (the trampoline
//! loads their root with a 32-bit `mov cr3`): taken from the host's memory when that lies below
//! 4 GiB, so that nothing else below 1 MiB is touched, else borrowed like the trampoline page.

use core::ptr::NonNull;

use super::error::BringupError;
use super::host::Host;
use super::live_pages;
use super::lowmem::RefusalSummary;
use crate::arch::x86_64::transition_tables::{frames_needed, Frame};
use crate::phys::LinearMapping;

const PAGE: usize = 4096;

/// Frames set aside for the transition tables: enough for two 4 KiB mappings (the trampoline
/// page and the page of the long-mode entry) that share no table.
pub const TABLE_FRAMES: usize = frames_needed(2);

/// Borrowed pages: at most the trampoline page and the table frames.
const MAX_BORROWED: usize = 1 + TABLE_FRAMES;

/// The pages in use for one bring-up, and the saved contents of the borrowed ones.
pub struct BorrowedLowPages {
    /// Physical address of the trampoline page.
    pub trampoline: u64,
    /// The table frames.
    pub tables: [Frame; TABLE_FRAMES],
    /// Whether the table frames are borrowed low pages (else the host's memory).
    pub tables_borrowed: bool,
    /// What the census refused, for the console.
    pub refusals: RefusalSummary,
    borrowed: [u64; MAX_BORROWED],
    borrowed_count: usize,
    saved: NonNull<u8>,
    phys: LinearMapping,
}

/// Table frames from the host's memory, if every one lies below 4 GiB.
fn frames_from_host_memory<H: Host>(host: &H) -> Option<[Frame; TABLE_FRAMES]> {
    let block = host.alloc_zeroed(TABLE_FRAMES * PAGE, PAGE)?;
    let mut frames = [Frame {
        phys: 0,
        table: core::ptr::null_mut(),
    }; TABLE_FRAMES];
    for (i, frame) in frames.iter_mut().enumerate() {
        let virt = block.as_ptr() as u64 + (i * PAGE) as u64;
        let phys = host.virt_to_phys(virt).filter(|&p| p < 1 << 32)?;
        *frame = Frame {
            phys,
            table: virt as *mut u64,
        };
    }
    Some(frames)
}

impl BorrowedLowPages {
    /// Chooses the pages and saves the contents of the borrowed ones in memory from the host.
    pub fn borrow<H: Host>(host: &H) -> Result<BorrowedLowPages, BringupError> {
        let census = live_pages::census(host)?;
        let trampoline = census.trampoline_page().map_err(BringupError::NoLowPage)?;
        let phys = host.phys();
        let mut borrowed = [0u64; MAX_BORROWED];
        borrowed[0] = trampoline;
        let mut borrowed_count = 1;
        let (tables, tables_borrowed) = match frames_from_host_memory(host) {
            Some(frames) => (frames, false),
            None => {
                let pages = census
                    .table_pages::<TABLE_FRAMES>(trampoline)
                    .map_err(BringupError::NoLowPage)?;
                borrowed[1..].copy_from_slice(&pages);
                borrowed_count = MAX_BORROWED;
                (
                    pages.map(|p| Frame {
                        phys: p,
                        table: phys.virt(p) as *mut u64,
                    }),
                    true,
                )
            }
        };
        let bytes = PAGE * borrowed_count;
        let saved = host
            .alloc_zeroed(bytes, 8)
            .ok_or(BringupError::OutOfMemory {
                what: "saving the borrowed low pages",
                cpu: 0,
                bytes,
            })?;
        let pages = BorrowedLowPages {
            trampoline,
            tables,
            tables_borrowed,
            refusals: census.summary(),
            borrowed,
            borrowed_count,
            saved,
            phys,
        };
        for (i, &page) in pages.borrowed().iter().enumerate() {
            // SAFETY: `page` is free RAM below 1 MiB by the host's word, checked against
            // everything the library can see in use (live_pages.rs), mapped writable through
            // the host's physical mapping; `saved` has room for every borrowed page.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    pages.phys.virt(page) as *const u8,
                    saved.as_ptr().add(i * PAGE),
                    PAGE,
                )
            };
        }
        Ok(pages)
    }

    fn borrowed(&self) -> &[u64] {
        &self.borrowed[..self.borrowed_count]
    }

    /// Where the library writes the trampoline page.
    pub fn trampoline_ptr(&self) -> *mut u8 {
        self.phys.virt(self.trampoline) as *mut u8
    }

    /// Puts every borrowed page back as it was. Only once no CPU executes from the trampoline
    /// page or walks the transition tables: every AP started has loaded the host's page-table
    /// root or was sent INIT.
    pub fn give_back(self) {
        for (i, &page) in self.borrowed().iter().enumerate() {
            // SAFETY: the same pages and buffer as in `borrow`; by the contract above nothing
            // uses the pages any more.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    self.saved.as_ptr().add(i * PAGE),
                    self.phys.virt(page) as *mut u8,
                    PAGE,
                )
            };
        }
    }
}
