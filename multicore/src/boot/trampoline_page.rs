//! Step 4 of the bring-up: the trampoline blob copied into its borrowed page and relocated
//! there, its parameters written, and the transition page tables built (the trampoline page
//! identity-mapped, the long-mode entry at its virtual address).

use super::error::BringupError;
use super::host::Host;
use super::long_mode_entry;
use super::low_pages::BorrowedLowPages;
use crate::arch::x86_64::cpu_state::ApControlState;
use crate::arch::x86_64::trampoline::{self, TrampolineParams, PAGE_SIZE};
use crate::arch::x86_64::transition_tables::TransitionTables;

/// Writes the trampoline into `pages.trampoline` for APs that must end up in `control`.
/// Prints each step; on error the caller gives the pages back (no AP has been started).
pub(super) fn install<H: Host>(
    host: &H,
    pages: &BorrowedLowPages,
    control: &ApControlState,
) -> Result<(), BringupError> {
    let blob = trampoline::image();
    assert!(blob.len() <= PAGE_SIZE, "the trampoline fits its page");
    // SAFETY: the page is borrowed (free RAM below 1 MiB, saved), mapped writable through the
    // host's physical mapping, and no AP runs from it yet; the blob fits the page.
    let page_bytes = unsafe {
        let page_ptr = pages.trampoline_ptr();
        core::ptr::copy_nonoverlapping(blob.as_ptr(), page_ptr, blob.len());
        core::slice::from_raw_parts_mut(page_ptr, blob.len())
    };
    host.print(format_args!(
        "Boot trampoline copied to {:#x}\n",
        pages.trampoline
    ));
    trampoline::apply_relocations(
        page_bytes,
        trampoline::relocations(),
        pages.trampoline as u32,
    )
    .map_err(BringupError::Relocation)?;
    host.print(format_args!("Relocations applied\n"));

    let transition_cr3 = build_transition_tables(host, pages)?;
    host.print(format_args!(
        "Transition page tables at {transition_cr3:#x} ({})\n",
        if pages.tables_borrowed {
            "borrowed low pages"
        } else {
            "in the library's memory"
        }
    ));
    let params = TrampolineParams {
        transition_cr3,
        host_cr3: control.cr3,
        long_mode_entry: long_mode_entry::entry_address(),
        cr0: control.cr0,
        cr4: control.cr4,
        efer: control.efer,
        xcr0: control.xcr0,
    };
    let params_ptr =
        page_bytes[trampoline::params_offset()..].as_mut_ptr() as *mut TrampolineParams;
    // SAFETY: the blob holds one TrampolineParams at params_offset(), 8-aligned (both
    // unit-tested); no AP runs yet, so the write races with nothing.
    unsafe { params_ptr.write_volatile(params) };
    Ok(())
}

/// The transition tables in `pages.tables`: the trampoline page identity-mapped and the page of
/// the long-mode entry at its virtual address. Returns their root.
fn build_transition_tables<H: Host>(
    host: &H,
    pages: &BorrowedLowPages,
) -> Result<u64, BringupError> {
    let entry = long_mode_entry::entry_address() & !0xFFF;
    let entry_phys = host
        .virt_to_phys(entry)
        .ok_or(BringupError::EntryNotMapped { virt: entry })?;
    // SAFETY: the frames are the host's memory handed to this bring-up, or borrowed low pages
    // (saved, ours until given back), writable at `table`.
    let mut tables =
        unsafe { TransitionTables::new(&pages.tables) }.map_err(BringupError::TransitionTables)?;
    tables
        .map_4k(pages.trampoline, pages.trampoline)
        .and_then(|()| tables.map_4k(entry, entry_phys & !0xFFF))
        .map_err(BringupError::TransitionTables)?;
    Ok(tables.root())
}
