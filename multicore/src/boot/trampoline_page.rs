//! Step 4 of the bring-up: the trampoline blob copied into its borrowed page and relocated
//! there, its parameters written, the transition page tables built (the trampoline page
//! identity-mapped, the long-mode entry at its virtual address), and the root the APs turn
//! paging on with chosen: the host's own where it can run the trampoline, else the transition
//! tables'.

use x86_64::registers::control::Cr4Flags;

use super::error::BringupError;
use super::host::Host;
use super::long_mode_entry;
use super::low_pages::BorrowedLowPages;
use crate::arch::x86_64::cpu_state::ApControlState;
use crate::arch::x86_64::page_walk;
use crate::arch::x86_64::trampoline::{self, LongModeWork, TrampolineParams, PAGE_SIZE};
use crate::arch::x86_64::transition_tables::TransitionTables;
use crate::phys::PhysRead;

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
    trampoline::patch_long_mode_work(
        page_bytes,
        LongModeWork::needed(control.cr4, control.cr4_before_paging),
    );
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
    let on_host_tables = host_tables_run_trampoline(host, control, pages.trampoline);
    host.print(format_args!(
        "APs turn paging on with {}\n",
        if on_host_tables {
            "the host's page tables (they map the trampoline page to itself)"
        } else {
            "the transition page tables"
        }
    ));
    let params = TrampolineParams {
        cr3_before_paging: if on_host_tables {
            control.cr3
        } else {
            transition_cr3
        },
        host_cr3: control.cr3,
        long_mode_entry: if on_host_tables {
            long_mode_entry::entry_on_host_root_address()
        } else {
            long_mode_entry::entry_address()
        },
        cr0: control.cr0,
        cr4: control.cr4,
        cr4_before_paging: control.cr4_before_paging,
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

/// Whether an AP can turn paging on with the host's root (`control.cr3`) and go on under it:
/// the root is below 4 GiB (real mode loads 32 bits of CR3) and the host's tables map the
/// trampoline page to itself, present, executable, and not a user page when CR4.SMEP would
/// forbid running it. Then the root is in CR3 already and the trampoline jumps past the long-mode
/// entry's CR3 load: one TLB flush and one set of page walks per AP fewer, which under TCG is a
/// share of the AP's start-up that can be measured (`bench --only bringup`). Otherwise the
/// transition tables do the job.
fn host_tables_run_trampoline<H: Host>(host: &H, control: &ApControlState, page: u64) -> bool {
    if control.cr3 >= 1 << 32 {
        return false;
    }
    let phys = host.phys();
    let read = |pa: u64| phys.read_array::<8>(pa).ok().map(u64::from_le_bytes);
    let smep = Cr4Flags::from_bits_retain(control.cr4)
        .contains(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION);
    page_walk::translate_leaf(control.cr3, page, read)
        .is_some_and(|leaf| leaf.phys == page && leaf.executable && !(smep && leaf.user))
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
