//! Starting the APs: trampoline page, per-AP memory, and the INIT/SIPI sequence in the two
//! strategies (one AP at a time, or all together).
//!
//! Policy (which CPUs, in which order, how long to wait, what to report) lives here; the
//! mechanism (ICR values, the trampoline blob, CPU discovery) lives in `arch` and `acpi`.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use super::cpu_data::{ApEntry, CpuData, CpuState};
use super::delays::Delays;
use super::host::Host;
use super::low_pages::{BorrowedLowPages, TABLE_FRAMES};
use super::lowmem::NoLowPage;
use crate::arch::x86_64::apic::icr::Icr;
use crate::arch::x86_64::apic::{ApicError, LocalApic};
use crate::arch::x86_64::cpu_state::ApControlState;
use crate::arch::x86_64::long_mode_entry::{self, ApBootTable};
use crate::arch::x86_64::page_walk::SurveyError;
use crate::arch::x86_64::trampoline::{self, RelocError, TrampolineParams, PAGE_SIZE};
use crate::arch::x86_64::transition_tables::{TablesError, TransitionTables};
use crate::arch::x86_64::tsc::{self, Tsc};
use crate::cmdline::{DelayPolicy, Strategy};

/// How to start the APs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartConfig {
    /// One at a time, or all together.
    pub strategy: Strategy,
    /// Which waits to keep.
    pub delays: DelayPolicy,
    /// Bytes of stack per AP (a multiple of 4 KiB; a guard page is added below).
    pub ap_stack_size: usize,
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

/// Why the bring-up could not start at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BringupError {
    /// No page for the trampoline.
    NoLowPage(NoLowPage),
    /// The host's page tables could not be surveyed for the pages they occupy.
    HostPageTables(SurveyError),
    /// The host uses 5-level paging (CR4.LA57); the trampoline enables 4-level paging.
    FiveLevelPaging,
    /// Another bring-up is running.
    AlreadyRunning,
    /// The page of the library's long-mode entry has no physical address (`Host::virt_to_phys`
    /// returned `None`).
    EntryNotMapped {
        /// The page's virtual address.
        virt: u64,
    },
    /// The transition page tables could not be built.
    TransitionTables(TablesError),
    /// The host ran out of memory.
    OutOfMemory {
        /// What was being allocated.
        what: &'static str,
        /// For which CPU index (0 when for all).
        cpu: u32,
        /// Bytes asked for.
        bytes: usize,
    },
    /// The trampoline could not be relocated.
    Relocation(RelocError),
    /// An IPI could not be sent at all.
    Apic(ApicError),
}

impl core::fmt::Display for BringupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BringupError::NoLowPage(e) => write!(f, "{e}"),
            BringupError::HostPageTables(e) => write!(f, "{e}"),
            BringupError::FiveLevelPaging => write!(
                f,
                "the host uses 5-level paging (CR4.LA57); the AP trampoline supports 4-level paging only"
            ),
            BringupError::AlreadyRunning => write!(f, "another bring-up is running"),
            BringupError::EntryNotMapped { virt } => write!(
                f,
                "cannot find the physical page of the library's AP entry code at {virt:#x} (Host::virt_to_phys)"
            ),
            BringupError::TransitionTables(e) => write!(f, "{e}"),
            BringupError::OutOfMemory { what, cpu, bytes } => {
                write!(f, "out of memory: {bytes} bytes for {what} of CPU {cpu}")
            }
            BringupError::Relocation(e) => write!(f, "{e}"),
            BringupError::Apic(e) => write!(f, "{e}"),
        }
    }
}

fn alloc<H: Host>(
    host: &H,
    what: &'static str,
    cpu: u32,
    bytes: usize,
    align: usize,
) -> Result<NonNull<u8>, BringupError> {
    host.alloc_zeroed(bytes, align)
        .ok_or(BringupError::OutOfMemory { what, cpu, bytes })
}

/// Starts the APs whose APIC IDs are `apic_ids[1..]` (`apic_ids[0]` is the BSP, this CPU),
/// each running `entry` with `arg` once in Rust. Returns when every AP is online or has
/// failed (each failure is printed, naming the CPU and its APIC ID); an `Err` means nothing was
/// started.
pub fn start_aps<H: Host>(
    host: &H,
    apic: &LocalApic,
    tsc: &Tsc,
    apic_ids: &[u32],
    config: &StartConfig,
    entry: ApEntry,
    arg: usize,
) -> Result<BringupReport, BringupError> {
    let n = apic_ids.len();
    let (cpus, stack_guards) = make_cpu_data(host, apic_ids, config.ap_stack_size, entry, arg)?;
    if n == 1 {
        return Ok(BringupReport {
            cpus,
            aps_online: 0,
            aps_failed: 0,
            time_us: 0,
            trampoline_page: 0,
            stack_guards,
            stray_aps: 0,
        });
    }

    // The tables the trampoline searches: APIC IDs and CpuData pointers of the APs.
    let aps = &cpus[1..];
    let ids_ptr = alloc(host, "the APIC ID table", 0, 4 * aps.len(), 8)?.cast::<u32>();
    let cpus_ptr = alloc(host, "the CPU table", 0, 8 * aps.len(), 8)?.cast::<u64>();
    for (i, cpu) in aps.iter().enumerate() {
        // SAFETY: both tables were just allocated with room for aps.len() entries, zeroed, and
        // are not shared yet.
        unsafe {
            ids_ptr.as_ptr().add(i).write(cpu.apic_id);
            cpus_ptr
                .as_ptr()
                .add(i)
                .write(*cpu as *const CpuData as u64);
        }
    }

    let control = ApControlState::from_bsp(Some(host.page_table_root()));
    if control.cr4 & CR4_LA57 != 0 {
        return Err(BringupError::FiveLevelPaging);
    }
    if BRINGUP_RUNNING.swap(true, Ordering::Acquire) {
        return Err(BringupError::AlreadyRunning);
    }
    let result = borrow_pages_and_start(host, apic, tsc, config, cpus, ids_ptr, cpus_ptr, control);
    BRINGUP_RUNNING.store(false, Ordering::Release);
    result.map(
        |(aps_online, time_us, trampoline_page, stray_aps)| BringupReport {
            cpus,
            aps_online,
            aps_failed: aps.len() as u32 - aps_online,
            time_us,
            trampoline_page,
            stack_guards,
            stray_aps,
        },
    )
}

/// CR4.LA57: 5-level paging (SDM Vol. 3A §2.5). The trampoline enables 4-level paging, and
/// LA57 cannot change while paging is on in long mode.
const CR4_LA57: u64 = 1 << 12;

/// One bring-up at a time: the long-mode entry's table and the low pages are shared.
static BRINGUP_RUNNING: AtomicBool = AtomicBool::new(false);

/// Borrows the low pages, writes the trampoline and the transition tables, publishes the CPU
/// table, starts the APs and gives the pages back. Returns (APs online, µs, trampoline page,
/// stray APs).
#[allow(clippy::too_many_arguments)]
fn borrow_pages_and_start<H: Host>(
    host: &H,
    apic: &LocalApic,
    tsc: &Tsc,
    config: &StartConfig,
    cpus: &'static [&'static CpuData],
    ids_ptr: NonNull<u32>,
    cpus_ptr: NonNull<u64>,
    control: ApControlState,
) -> Result<(u32, u64, u64, u32), BringupError> {
    let n = cpus.len();
    let aps = &cpus[1..];
    let pages = BorrowedLowPages::borrow(host)?;
    host.print(format_args!("Low memory: {}\n", pages.refusals));
    let page = pages.trampoline;
    let page_ptr = pages.trampoline_ptr();
    let blob = trampoline::image();
    // SAFETY: the page is borrowed (free RAM below 1 MiB, saved), mapped writable through the
    // host's physical mapping. The blob fits the page (checked by a unit test and here).
    let page_bytes = unsafe {
        assert!(blob.len() <= PAGE_SIZE);
        core::ptr::copy_nonoverlapping(blob.as_ptr(), page_ptr, blob.len());
        core::slice::from_raw_parts_mut(page_ptr, blob.len())
    };
    host.print(format_args!("Boot trampoline copied to {page:#x}\n"));
    let transition_cr3 = match relocate_and_map(host, &pages, page_bytes) {
        Ok(root) => root,
        Err(e) => {
            pages.give_back(); // no AP was started
            return Err(e);
        }
    };
    host.print(format_args!("Relocations applied\n"));
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
    // SAFETY: no AP of this bring-up runs yet and those of an earlier one have left the entry
    // code (BRINGUP_RUNNING); both tables were filled above and live as long as the CPUs.
    unsafe {
        ApBootTable::publish(
            ids_ptr.as_ptr(),
            cpus_ptr.as_ptr() as *const *const CpuData,
            aps.len() as u32,
            super::ap_entry::ap_rust_entry as *const () as u64,
        )
    };
    host.print(format_args!("Page table set: {:#x}\n", control.cr3));

    let failed = alloc(host, "the failure flags", 0, n, 1)?.cast::<AtomicBool>();
    let starter = Starter {
        host,
        // SAFETY: n zeroed bytes are n AtomicBools set to false (same size and alignment as
        // u8); the allocation lives as long as the CPUs and is only used through this slice.
        failed: unsafe { core::slice::from_raw_parts(failed.as_ptr(), n) },
        apic,
        tsc,
        delays: Delays::of(config.delays),
        vector: (page >> 12) as u8,
    };
    let first_init = tsc::now();
    match config.strategy {
        Strategy::Sequential => {
            for cpu in aps {
                host.print(format_args!("Starting CPU {}...\n", cpu.index));
                starter.start_group(core::slice::from_ref(cpu), true);
                starter.wait_online(core::slice::from_ref(cpu));
            }
        }
        Strategy::Parallel => {
            host.print(format_args!("Starting {} APs in parallel\n", aps.len()));
            starter.start_group(aps, false);
            starter.wait_online(aps);
        }
    }
    // The bring-up ends at the last check-in (the AP running Rust on its own stack); what the
    // host's entry does after that (the demo prints a line) is not start-up latency.
    let last_checkin = aps
        .iter()
        .filter(|c| c.state() == CpuState::Online)
        .filter_map(|c| c.arrived_tsc())
        .max()
        .unwrap_or(first_init);
    let aps_online = aps.iter().filter(|c| c.state() == CpuState::Online).count() as u32;

    // Every AP has left the borrowed pages: online ones run on their own stacks under the host's
    // page tables, stray ones halt in the long-mode entry, failed ones were sent INIT and wait
    // for a SIPI. Give the pages back as they were.
    pages.give_back();
    let stray = ApBootTable::stray();
    if stray != 0 {
        host.print(format_args!(
            "warning: {stray} CPU(s) not in the CPU table woke up; they are halted with interrupts off\n"
        ));
    }
    Ok((
        aps_online,
        tsc.ticks_to_us(last_checkin.saturating_sub(first_init)),
        page,
        stray,
    ))
}

/// Relocates the trampoline in its page and builds the transition tables: the trampoline page
/// identity-mapped, the long-mode entry at its virtual address. Returns the tables' root.
fn relocate_and_map<H: Host>(
    host: &H,
    pages: &BorrowedLowPages,
    page_bytes: &mut [u8],
) -> Result<u64, BringupError> {
    trampoline::apply_relocations(
        page_bytes,
        trampoline::relocations(),
        pages.trampoline as u32,
    )
    .map_err(BringupError::Relocation)?;
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
        budget.add(core::mem::size_of::<CpuData>(), 64);
    }
    budget.add(4 * aps, 8); // the APIC ID table
    budget.add(8 * aps, 8); // the CPU table
    budget.add(TABLE_FRAMES * PAGE_SIZE, PAGE_SIZE); // transition page tables
    budget.add((1 + TABLE_FRAMES) * PAGE_SIZE, 8); // saved low pages
    budget.add(cpus, 1); // the failure flags
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

/// Allocates and fills `CpuData` for every CPU, with a guarded stack for each AP.
fn make_cpu_data<H: Host>(
    host: &H,
    apic_ids: &[u32],
    stack_size: usize,
    entry: ApEntry,
    arg: usize,
) -> Result<(&'static [&'static CpuData], bool), BringupError> {
    let n = apic_ids.len();
    let mut all_guarded = true;
    let table = alloc(host, "the CpuData table", 0, 8 * n, 8)?.cast::<&'static CpuData>();
    for (index, &apic_id) in apic_ids.iter().enumerate() {
        let index = index as u32;
        let stack = if index == 0 {
            (0, 0) // the BSP keeps the stack it runs on
        } else {
            let bytes = stack_size + PAGE_SIZE;
            let base = alloc(host, "the stack", index, bytes, PAGE_SIZE)?.as_ptr() as u64;
            if !host.guard_page(base) {
                all_guarded = false;
            }
            (base + PAGE_SIZE as u64, base + bytes as u64)
        };
        let data =
            alloc(host, "CpuData", index, core::mem::size_of::<CpuData>(), 64)?.cast::<CpuData>();
        // SAFETY: `data` is a fresh, suitably aligned allocation for one CpuData that lives as
        // long as the CPUs (host contract), so handing out a 'static reference is sound; the
        // table has room for n entries.
        unsafe {
            data.as_ptr()
                .write(CpuData::new(index, apic_id, stack, entry, arg));
            table.as_ptr().add(index as usize).write(&*data.as_ptr());
        }
        if index > 0 {
            host.print(format_args!(
                "Initialized CPU {index} (APIC ID {apic_id})\n"
            ));
        }
    }
    // SAFETY: all n entries were written above; the table is never written again.
    let table = unsafe { core::slice::from_raw_parts(table.as_ptr(), n) };
    Ok((table, all_guarded))
}

struct Starter<'a, H: Host> {
    host: &'a H,
    /// Per CPU index: the BSP gave up on it (kept apart from the state word, which the AP
    /// itself writes).
    failed: &'a [AtomicBool],
    apic: &'a LocalApic,
    tsc: &'a Tsc,
    delays: Delays,
    vector: u8,
}

impl<H: Host> Starter<'_, H> {
    fn is_failed(&self, cpu: &CpuData) -> bool {
        self.failed[cpu.index as usize].load(Ordering::Relaxed)
    }

    /// Sends `icr` to each CPU of `group` still in `state` (a send error fails that CPU).
    fn send_to(&self, group: &[&'static CpuData], icr: Icr, only_if: CpuState) {
        for cpu in group {
            if cpu.state() == only_if && !self.is_failed(cpu) {
                if let Err(e) = self.apic.send(icr, cpu.apic_id, self.tsc) {
                    self.fail(cpu, format_args!("{e}"));
                }
            }
        }
    }

    /// Polls until every CPU of `group` is at least `state` (or failed), or until `us` pass
    /// without any of them getting there. The timeout counts from the last progress, not from
    /// the start: with hundreds of vCPUs on a few host cores, CPUs arrive one after another for
    /// longer than any fixed budget, yet each one that arrives proves the machine is moving.
    fn wait_all(&self, group: &[&'static CpuData], state: CpuState, us: u64) -> bool {
        let reached = |c: &&&'static CpuData| self.is_failed(c) || c.state() as u32 >= state as u32;
        let mut done = 0;
        let mut deadline = self.tsc.deadline_us(us);
        loop {
            let now_done = group.iter().filter(reached).count();
            if now_done == group.len() {
                return true;
            }
            if now_done > done {
                done = now_done;
                deadline = self.tsc.deadline_us(us);
            } else if self.tsc.passed(deadline) {
                return false;
            }
            core::hint::spin_loop();
        }
    }

    /// INIT, SIPI and, for CPUs that have not checked in, a second SIPI; one retry of the whole
    /// sequence for CPUs that show no sign of life; then failure for the rest.
    fn start_group(&self, group: &[&'static CpuData], verbose: bool) {
        for attempt in 0..2 {
            self.send_to(group, Icr::init(), CpuState::NotStarted);
            self.tsc.delay_us(self.delays.after_init_us);
            self.send_to(group, Icr::startup(self.vector), CpuState::NotStarted);
            if verbose {
                for cpu in group {
                    self.host
                        .print(format_args!("SIPI sent to CPU {}\n", cpu.index));
                }
            }
            self.tsc.delay_us(self.delays.after_sipi_us);
            if !self.wait_all(
                group,
                CpuState::InLongMode,
                self.delays.second_sipi_after_us,
            ) {
                self.send_to(group, Icr::startup(self.vector), CpuState::NotStarted);
                self.tsc.delay_us(self.delays.after_sipi_us);
            }
            if self.wait_all(group, CpuState::Arrived, self.delays.attempt_timeout_us) {
                return;
            }
            if attempt == 0 {
                // A CPU in the trampoline is making progress and is left alone; one with no
                // sign of life gets the whole sequence again (INIT resets it harmlessly: it
                // has touched nothing but its own registers). Known window: a CPU that leaves
                // NOT_STARTED between this check and its INIT (after 3 s without progress, a
                // few microseconds) is reset after it began Rust code; should it hold a lock
                // then, the lock stays held. Closing it needs the AP to wait for a "go" from
                // the BSP before taking any lock.
                for cpu in group
                    .iter()
                    .filter(|c| c.state() == CpuState::NotStarted && !self.is_failed(c))
                {
                    self.host.print(format_args!(
                        "warning: CPU {} (APIC ID {}) did not answer INIT/SIPI/SIPI ({} ms without any AP arriving); retrying\n",
                        cpu.index,
                        cpu.apic_id,
                        self.delays.attempt_timeout_us / 1000
                    ));
                }
            }
        }
        for cpu in group {
            let state = cpu.state();
            if (state as u32) < CpuState::Arrived as u32 && !self.is_failed(cpu) {
                self.fail(cpu, format_args!("{} (2 attempts)", state.describe()));
            }
        }
    }

    /// Waits for every started CPU of `group` to be marked online.
    fn wait_online(&self, group: &[&'static CpuData]) {
        if self.wait_all(group, CpuState::Online, self.delays.online_timeout_us) {
            return;
        }
        for cpu in group {
            if cpu.state() != CpuState::Online && !self.is_failed(cpu) {
                self.fail(cpu, format_args!("{}", CpuState::Arrived.describe()));
            }
        }
    }

    /// Gives up on `cpu`: INIT puts it back into wait-for-SIPI so that it cannot run from the
    /// trampoline page once the page is given back, then the failure is printed.
    fn fail(&self, cpu: &'static CpuData, why: core::fmt::Arguments<'_>) {
        if cpu.state() != CpuState::Online {
            let _ = self.apic.send(Icr::init(), cpu.apic_id, self.tsc);
        }
        self.failed[cpu.index as usize].store(true, Ordering::Relaxed);
        self.host.print(format_args!(
            "error: CPU {} (APIC ID {}) failed to start: {}\n",
            cpu.index, cpu.apic_id, why
        ));
    }
}
