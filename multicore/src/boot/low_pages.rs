//! The low pages a bring-up borrows: the trampoline page (a SIPI can only start a CPU below
//! 1 MiB) and the frames of the transition page tables (below 4 GiB), chosen from what the
//! host vouches for, saved first and given back as they were afterwards.

use core::ptr::NonNull;

use super::host::Host;
use super::lowmem::{choose_table_pages, choose_trampoline_page};
use super::start::BringupError;
use crate::arch::x86_64::transition_tables::{frames_needed, Frame};
use crate::phys::LinearMapping;

const PAGE: usize = 4096;

/// Frames set aside for the transition tables: enough for two 4 KiB mappings (the trampoline
/// page and the page of the long-mode entry) that share no table.
pub const TABLE_FRAMES: usize = frames_needed(2);

/// The borrowed pages and their saved contents.
pub struct BorrowedLowPages {
    /// Physical address of the trampoline page.
    pub trampoline: u64,
    /// Physical addresses of the table frames.
    pub tables: [u64; TABLE_FRAMES],
    saved: NonNull<u8>,
    phys: LinearMapping,
}

impl BorrowedLowPages {
    /// Chooses the pages and saves their contents in memory from the host.
    pub fn borrow<H: Host>(host: &H) -> Result<BorrowedLowPages, BringupError> {
        let low = host.low_memory();
        let trampoline = choose_trampoline_page(&low).map_err(BringupError::NoLowPage)?;
        let tables = choose_table_pages::<TABLE_FRAMES>(&low, trampoline)
            .map_err(BringupError::NoLowPage)?;
        let bytes = PAGE * (1 + TABLE_FRAMES);
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
            saved,
            phys: host.phys(),
        };
        for (i, page) in pages.all().enumerate() {
            // SAFETY: `page` is free RAM below 1 MiB by the host's contract (LowMemory), mapped
            // writable through its physical mapping; `saved` has room for every page.
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

    fn all(&self) -> impl Iterator<Item = u64> + '_ {
        core::iter::once(self.trampoline).chain(self.tables.iter().copied())
    }

    /// Where the library writes the trampoline page.
    pub fn trampoline_ptr(&self) -> *mut u8 {
        self.phys.virt(self.trampoline) as *mut u8
    }

    /// The table frames, writable through the host's physical mapping.
    pub fn table_frames(&self) -> [Frame; TABLE_FRAMES] {
        self.tables.map(|phys| Frame {
            phys,
            table: self.phys.virt(phys) as *mut u64,
        })
    }

    /// Puts every page back as it was. Only once no CPU executes from the trampoline page or
    /// walks the transition tables: every AP started has loaded the host's page-table root or
    /// was sent INIT.
    pub fn give_back(self) {
        for (i, page) in self.all().enumerate() {
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
