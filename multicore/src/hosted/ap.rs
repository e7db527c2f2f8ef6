//! What a hosted AP does between the trampoline and the program's code: its own descriptor
//! tables (GDT with a TSS whose IST stacks catch double faults, NMIs and machine checks, and
//! the library's IDT), its own TLS block in FS base, then the program's entry; afterwards it
//! halts. Its GS base points at its `cpu_local` block from its first Rust instruction on (the
//! bring-up's AP entry); which CPU is which is asked there, as on every CPU.
//!
//! Interrupts stay off throughout: the host kernel knows nothing of this CPU, so no device
//! interrupt is meant for it, and the IDT is there for exceptions and NMIs.

use core::sync::atomic::{AtomicU32, Ordering};

use x86_64::registers::model_specific::FsBase;
use x86_64::VirtAddr;

use crate::arch::x86_64::gdt::CpuTables;
use crate::arch::x86_64::idt::Idt;
use crate::boot::{park_this_cpu, CpuData};
use crate::cpu_local::CpuRole;

/// What the program's entry learns about the AP it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApInfo {
    /// Dense CPU index (0 is the BSP, APs are 1..N in discovery order).
    pub index: u32,
    /// Local APIC ID.
    pub apic_id: u32,
}

/// Where a hosted AP is.
pub(crate) const AP_STARTED: u32 = 0;
pub(crate) const AP_RUNNING: u32 = 1;
pub(crate) const AP_FINISHED: u32 = 2;

/// One AP's resources, allocated by the BSP before any AP starts.
pub(crate) struct ApSlot {
    /// Its GDT and TSS, taken by the AP when it installs them (none for the BSP's slot).
    tables: spin::Mutex<Option<&'static mut CpuTables>>,
    ist_tops: [u64; 3],
    /// FS base (the TLS thread pointer), 0 for none.
    fs_base: u64,
    pub(crate) phase: AtomicU32,
}

impl ApSlot {
    pub(crate) fn new(
        tables: Option<&'static mut CpuTables>,
        ist_tops: [u64; 3],
        fs_base: u64,
    ) -> ApSlot {
        ApSlot {
            tables: spin::Mutex::new(tables),
            ist_tops,
            fs_base,
            phase: AtomicU32::new(AP_STARTED),
        }
    }
}

/// What every hosted AP needs, published once by the BSP before the bring-up.
pub(crate) struct ApShared {
    /// By CPU index (slot 0, the BSP's, stays empty).
    pub(crate) slots: &'static [ApSlot],
    pub(crate) idt: &'static Idt,
    pub(crate) entry: &'static (dyn Fn(&ApInfo) + Sync),
    /// After the entry: join the runtime (else halt).
    pub(crate) runtime: bool,
}

pub(crate) static SHARED: spin::Once<ApShared> = spin::Once::new();

/// The `CpuData::entry` of every hosted AP.
pub(crate) fn hosted_ap_entry(cpu: &'static CpuData) -> ! {
    let shared = SHARED
        .get()
        .expect("hosted bring-up publishes its state first");
    let slot = &shared.slots[cpu.index as usize];
    let tables = slot.tables.lock().take();
    let tables = tables.expect("an AP's slot holds its tables until it installs them");
    CpuTables::install(tables, slot.ist_tops);
    shared.idt.load();
    // FS base is this AP's TLS thread pointer (or 0): no code on this CPU relies on another.
    FsBase::write(VirtAddr::new(slot.fs_base));
    slot.phase.store(AP_RUNNING, Ordering::Release);
    cpu.mark_online();
    let info = ApInfo {
        index: cpu.index,
        apic_id: cpu.apic_id,
    };
    (shared.entry)(&info);
    slot.phase.store(AP_FINISHED, Ordering::Release);
    if shared.runtime {
        crate::rt::join_hosted(cpu)
    }
    park_this_cpu()
}

/// The index of the hosted AP running this code, or `None` on the BSP (or any CPU that is not
/// a hosted AP). See `cpu_local`: GS base is compared with the blocks' addresses, never
/// dereferenced, so this is sound on the host's CPU too.
pub fn current_ap() -> Option<u32> {
    crate::cpu_local::current()
        .filter(|c| c.role() == CpuRole::HostedAp)
        .map(|c| c.index())
}
