//! Bringing the APs up.
//!
//! # The sequence, step by step
//!
//! On the BSP, [`start_aps`] (start.rs) with a [`BringupPlan`] in and a [`BringupReport`] out:
//!
//! 1. **Per-CPU memory**: a [`CpuData`] for every CPU and a guarded stack for each AP, from the
//!    host (`cpu_table.rs`, `CpuTable::allocate`).
//! 2. **The BSP's control state**: CR0/CR4/EFER/XCR0 and the page-table root the APs must load
//!    (`arch/x86_64/cpu_state.rs`, `ApControlState::from_bsp`).
//! 3. **Low pages**: one page below 1 MiB for the trampoline (a SIPI can only start a CPU
//!    there), chosen among the pages the host names free and the census lets through, saved
//!    first (`low_pages.rs` `BorrowedLowPages::borrow`; the census in `live_pages.rs` and
//!    `lowmem.rs`).
//! 4. **Trampoline**: the blob copied into that page and relocated, its parameters written, the
//!    transition page tables built, and the root the APs turn paging on with chosen: the
//!    host's own if it maps the trampoline page to itself (`trampoline_page.rs` `install`;
//!    the blob in `arch/x86_64/trampoline.S`, the tables in
//!    `arch/x86_64/transition_tables.rs`).
//! 5. **Publish**: the APs' APIC IDs, their `CpuData` and the Rust entry in the one table the
//!    long-mode entry reads (`long_mode_entry.rs` `ApBootTable::publish`).
//! 6. **Kick and wait**: INIT, SIPI, a second SIPI for CPUs not yet seen, one retry, then
//!    failure, for all APs at once (the first AP's IPIs first; under TCG it is a pilot, the
//!    others' SIPIs wait until it is online) or one at a time (`kick.rs` `Kicker`), then the
//!    wait until each is online.
//! 7. **Give back**: the borrowed pages restored as they were (`BorrowedLowPages::give_back`).
//!
//! On each AP, after the SIPI:
//!
//! a. `arch/x86_64/trampoline.S`: real mode → long mode in one step, on the host's page tables
//!    when they map the trampoline page to itself, else on the transition tables, in the
//!    trampoline page, no stack;
//! b. `long_mode_entry.S`: the host's page-table root (if not loaded yet), its APIC ID (one
//!    CPUID, of the leaf the BSP chose) looked up in the table of step 5, the library's GDT,
//!    state `InLongMode`, its own stack, then
//! c. `ap_entry.rs` `ap_rust_entry`: its GS base, its local APIC, state `Arrived`, and the
//!    plan's entry function, which marks the CPU online ([`CpuData::mark_online`]) and goes on
//!    (the demo kernel: `rt::join`, which marks it once it waits for the runtime; a hosted
//!    program: `hosted::ap`).
//!
//! Each AP stamps the TSC at each of these phases and the BSP when it sends the AP's IPIs
//! (`phases.rs`; `CpuData::phases` reads them back after the bring-up).
//!
//! What the library needs from the kernel it runs in comes through [`Host`] (host.rs).

pub mod ap_entry;
pub mod cpu_data;
mod cpu_table;
pub mod delays;
mod error;
pub mod host;
mod kick;
pub mod live_pages;
pub mod long_mode_entry;
pub mod low_pages;
pub mod lowmem;
pub mod phases;
pub mod policy;
pub mod start;
mod trampoline_page;

pub use ap_entry::park_this_cpu;
pub use cpu_data::{ApEntry, CpuData, CpuState};
pub use error::BringupError;
pub use host::{Host, LowMemory, Zeroable};
pub use phases::ApPhases;
pub use policy::{DelayPolicy, StartConfig, Strategy, DEFAULT_AP_STACK_SIZE};
pub use start::{memory_needed, start_aps, BringupPlan, BringupReport, Budget};
