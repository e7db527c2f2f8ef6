//! [`start_aps`]: the bring-up as the steps of the map in `boot/mod.rs`, one call each, with a
//! [`BringupPlan`] in and a [`BringupReport`] out.
//!
//! Policy (which CPUs, in which order, how long to wait, what to report) lives in `boot`; the
//! mechanism (ICR values, the trampoline blob, CPU discovery) lives in `arch` and `acpi`.

use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::registers::control::Cr4Flags;

use super::cpu_data::{ApEntry, CpuData, CpuState};
use super::cpu_table::{CpuTable, CPU_DATA_ALIGN};
use super::delays::Delays;
use super::error::BringupError;
use super::host::Host;
use super::kick::Kicker;
use super::long_mode_entry::ApBootTable;
use super::low_pages::{BorrowedLowPages, TABLE_FRAMES};
use super::policy::{StartConfig, Strategy};
use super::trampoline_page;
use crate::arch::x86_64::apic::LocalApic;
use crate::arch::x86_64::cpu_state::ApControlState;
use crate::arch::x86_64::hypervisor::Hypervisor;
use crate::arch::x86_64::spin_wait::SpinWait;
use crate::arch::x86_64::trampoline::PAGE_SIZE;
use crate::arch::x86_64::tsc::{self, Tsc};
use crate::cpu_local::CpuLocal;

/// What to start and how.
#[derive(Debug, Clone, Copy)]
pub struct BringupPlan<'a> {
    /// APIC IDs of the CPUs, the BSP (this CPU) first: `apic_ids[1..]` are started.
    pub apic_ids: &'a [u32],
    /// Strategy, delays and AP stack size.
    pub config: StartConfig,
    /// What each AP runs once in Rust (it must call [`CpuData::mark_online`], or
    /// [`rt::join`](crate::rt::join), which does).
    pub entry: ApEntry,
    /// A value for `entry` ([`CpuData::arg`]).
    pub arg: usize,
}

/// What happened.
#[derive(Debug)]
pub struct BringupReport {
    /// Every CPU's data, by index (0 = BSP).
    pub cpus: &'static [&'static CpuData],
    /// APs that came online.
    pub aps_online: u32,
    /// APs that did not.
    pub aps_failed: u32,
    /// TSC microseconds from the first INIT to the last check-in (AP in Rust) of an AP that
    /// then came online.
    pub time_us: u64,
    /// TSC when the first INIT was sent (0 when no AP was started): the zero of the APs'
    /// phase stamps ([`CpuData::phases`]).
    pub start_tsc: u64,
    /// Physical address of the page the trampoline ran from (0 when no AP was started).
    pub trampoline_page: u64,
    /// Whether AP stacks have guard pages.
    pub stack_guards: bool,
    /// APs that woke up with an APIC ID not in the table (parked in the trampoline page,
    /// which is then kept rather than given back).
    pub stray_aps: u32,
}

impl BringupReport {
    /// CPUs online, the BSP included.
    pub fn online(&self) -> u32 {
        self.aps_online + 1
    }
}

/// Starts the APs of `plan`, each running `plan.entry` once in Rust. Returns when every AP is
/// online or has failed (each failure is printed, naming the CPU and its APIC ID); an `Err`
/// means no AP was started. The steps are those of the map in `boot/mod.rs`.
pub fn start_aps<H: Host>(
    host: &'static H,
    apic: &LocalApic,
    tsc: &Tsc,
    plan: &BringupPlan<'_>,
) -> Result<BringupReport, BringupError> {
    // 1. Per-CPU memory, and each CPU's identity block published (cpu_local.rs).
    let table = CpuTable::allocate(
        host,
        plan.apic_ids,
        plan.config.ap_stack_size,
        plan.entry,
        plan.arg,
    )?;
    let mut report = BringupReport {
        cpus: table.cpus,
        aps_online: 0,
        aps_failed: 0,
        time_us: 0,
        start_tsc: 0,
        trampoline_page: 0,
        stack_guards: table.stack_guards,
        stray_aps: 0,
    };
    let aps = table.aps();
    if aps.is_empty() {
        return Ok(report);
    }
    // 2. What the APs load to run like the BSP.
    let control = ApControlState::from_bsp(Some(host.page_table_root()));
    if Cr4Flags::from_bits_retain(control.cr4).contains(Cr4Flags::L5_PAGING) {
        // The trampoline enables 4-level paging, and LA57 cannot change in long mode.
        return Err(BringupError::FiveLevelPaging);
    }
    let _one_at_a_time = BringupLock::take()?;
    // 3. Low pages.
    let pages = BorrowedLowPages::borrow(host)?;
    host.print(format_args!("Low memory: {}\n", pages.refusals));
    // 4. The trampoline and the transition tables.
    if let Err(e) = trampoline_page::install(host, &pages, &control) {
        pages.give_back();
        return Err(e);
    }
    // 5. The table the long-mode entry searches.
    // SAFETY: no AP of this bring-up runs yet and those of an earlier one have left the entry
    // code (BringupLock); both tables live as long as the CPUs and have aps.len() entries.
    unsafe {
        ApBootTable::publish(
            table.ap_ids.as_ptr(),
            aps.as_ptr() as *const *const CpuData,
            aps.len() as u32,
            super::ap_entry::ap_rust_entry as *const () as u64,
        )
    };
    host.print(format_args!("Page table set: {:#x}\n", control.cr3));
    // 6. Kick and wait.
    // What an AP joining the runtime (`rt::join`) loads while it waits, built here once.
    let _ = crate::rt::waiting_idt();
    let hypervisor = Hypervisor::detect();
    let kicker = Kicker {
        host,
        failed: table.failed,
        apic,
        tsc,
        delays: Delays::of(plan.config.delays),
        vector: (pages.trampoline >> 12) as u8,
        pilot: Kicker::<H>::pilot_pays(hypervisor),
        spin: SpinWait::for_hypervisor(hypervisor),
    };
    if plan.config.strategy == Strategy::Parallel {
        // Before the clock starts: a console line costs more than an AP's start under TCG.
        host.print(format_args!("Starting {} APs in parallel\n", aps.len()));
    }
    let first_init = tsc::now();
    kicker.start_and_wait(aps, plan.config.strategy);
    // 7. Every AP has left the borrowed pages: online ones run on their own stacks under the
    // host's page tables, stray ones halt in the long-mode entry, failed ones were sent INIT
    // and wait for a SIPI. Give the pages back as they were.
    report.trampoline_page = pages.trampoline;
    pages.give_back();

    let online = || aps.iter().filter(|c| c.state() == CpuState::Online);
    // The bring-up ends at the last check-in (the AP running Rust on its own stack); what the
    // host's entry does after that (the demo prints a line) is not start-up latency.
    let last_checkin = online()
        .filter_map(|c| c.arrived_tsc())
        .max()
        .unwrap_or(first_init);
    report.aps_online = online().count() as u32;
    report.aps_failed = aps.len() as u32 - report.aps_online;
    report.time_us = tsc.ticks_to_us(last_checkin.saturating_sub(first_init));
    report.start_tsc = first_init;
    report.stray_aps = ApBootTable::stray();
    if report.stray_aps != 0 {
        host.print(format_args!(
            "warning: {} CPU(s) not in the CPU table woke up; they are halted with interrupts off\n",
            report.stray_aps
        ));
    }
    Ok(report)
}

/// One bring-up at a time: the long-mode entry's table and the low pages are shared. Held for
/// the whole of `start_aps` once it touches either.
struct BringupLock;

static BRINGUP_RUNNING: AtomicBool = AtomicBool::new(false);

impl BringupLock {
    fn take() -> Result<BringupLock, BringupError> {
        if BRINGUP_RUNNING.swap(true, Ordering::Acquire) {
            return Err(BringupError::AlreadyRunning);
        }
        Ok(BringupLock)
    }
}

impl Drop for BringupLock {
    fn drop(&mut self) {
        BRINGUP_RUNNING.store(false, Ordering::Release);
    }
}

/// Bytes of host memory a bring-up of `cpus` CPUs (the BSP included) may take through
/// [`Host::alloc_zeroed`], alignment padding included: what `start_aps` allocates, one entry
/// per allocation below.
pub fn memory_needed(cpus: usize, ap_stack_size: usize) -> usize {
    let aps = cpus.saturating_sub(1);
    let mut budget = Budget::default();
    budget.add(8 * cpus, 8); // the CpuData table
    for _ in 0..aps {
        budget.add(ap_stack_size + PAGE_SIZE, PAGE_SIZE); // stack and guard page
    }
    for _ in 0..cpus {
        budget.add(core::mem::size_of::<CpuData>(), CPU_DATA_ALIGN);
    }
    budget.add(4 * aps, 8); // the APIC ID table
    budget.add(TABLE_FRAMES * PAGE_SIZE, PAGE_SIZE); // transition page tables
    budget.add((1 + TABLE_FRAMES) * PAGE_SIZE, 8); // saved low pages
    budget.add(cpus, 1); // the failure flags
    budget.add(cpus * core::mem::size_of::<CpuLocal>(), CPU_DATA_ALIGN); // CPU-local blocks
    budget.total
}

/// A sum of allocations, each with the most padding its alignment can cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct Budget {
    /// Bytes so far.
    pub total: usize,
}

impl Budget {
    /// Adds an allocation of `size` bytes aligned to `align`.
    pub fn add(&mut self, size: usize, align: usize) {
        self.total = self.total.saturating_add(size.saturating_add(align - 1));
    }
}
